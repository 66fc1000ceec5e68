import { describe, expect, it } from "vitest";
import { childSpan, formatTraceparent, parseTraceparent } from "./trace.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";

describe("traceparent", () => {
  it("reads a W3C version-00 traceparent", () => {
    expect(parseTraceparent(`00-${TRACE}-00f067aa0ba902b7-01`)).toEqual({ traceId: TRACE, spanId: "00f067aa0ba902b7", flags: "01" });
  });

  it("refuses what the spec calls invalid, so a new trace starts", () => {
    for (const bad of [
      undefined, "", "garbage",
      `00-${"0".repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
      `00-${TRACE}-${"0".repeat(16)}-01`, // all-zero parent id
      `00-${TRACE.toUpperCase()}-00f067aa0ba902b7-01`, // uppercase
      `ff-${TRACE}-00f067aa0ba902b7-01`, // version ff
      `00-${TRACE}-00f067aa0ba902b7-01-extra`, // version 00 has exactly four fields
      `00-${TRACE}-00f067aa0ba902b-01`,
      "x".repeat(600),
    ]) expect(parseTraceparent(bad), String(bad)).toBeUndefined();
  });

  it("reads the four known fields of a later version", () => {
    expect(parseTraceparent(`01-${TRACE}-00f067aa0ba902b7-01-whatever`)).toEqual({ traceId: TRACE, spanId: "00f067aa0ba902b7", flags: "01" });
  });

  it("starts a child span in the caller's trace, or a new unsampled trace", () => {
    const parent = parseTraceparent(`00-${TRACE}-00f067aa0ba902b7-01`);
    const child = childSpan(parent);
    expect(child.traceId).toBe(TRACE);
    expect(child.flags).toBe("01");
    expect(child.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(child.spanId).not.toBe("00f067aa0ba902b7");
    const root = childSpan(undefined);
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.traceId).not.toBe(TRACE);
    expect(formatTraceparent(root)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    expect(parseTraceparent(formatTraceparent(child))).toEqual(child);
  });
});
