import { MAX_CALL_DEPTH } from "@hearth/protocol";
import { describe, expect, it } from "vitest";
import { callDepth, childRequestId } from "./calls.ts";

describe("call depth", () => {
  it("is 0 for a call from outside and the header's value within the limit", () => {
    expect(callDepth(undefined)).toBe(0);
    expect(callDepth("0")).toBe(0);
    expect(callDepth("3")).toBe(3);
  });

  it("takes anything odd or over the limit as the limit, so such a call cannot call on", () => {
    for (const odd of ["", "-1", "1.5", "abc", String(MAX_CALL_DEPTH + 1), "1e9"]) expect(callDepth(odd)).toBe(MAX_CALL_DEPTH);
  });
});

describe("a sub-call's request id", () => {
  it("is the caller's plus _c<n>", () => {
    expect(childRequestId("abc", 1)).toBe("abc_c1");
    expect(childRequestId("abc_c1", 2)).toBe("abc_c1_c2");
  });

  it("keeps a long caller's start and a hash of it within 255 characters, distinct per caller and per call", () => {
    const a = "a".repeat(254);
    const b = "a".repeat(253) + "b";
    for (const id of [childRequestId(a, 1), childRequestId(a, 2), childRequestId(b, 1)]) {
      expect(id.length).toBeLessThanOrEqual(255);
      expect(id).toMatch(/^[\w=-]+$/);
    }
    expect(new Set([childRequestId(a, 1), childRequestId(a, 2), childRequestId(b, 1), a]).size).toBe(4);
  });
});
