import { MAX_CALL_DEPTH } from "@hearth/protocol";
import { describe, expect, it } from "vitest";
import { callDepth } from "./calls.ts";

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
