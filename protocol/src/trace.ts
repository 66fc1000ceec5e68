/**
 * W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/):
 * parsing what a caller sent, and starting the gateway's own span in the
 * caller's trace (or a new trace). The gateway hands the result to the
 * device in the invocation's `Hearth-Traceparent` header and to the
 * function as its `traceparent`; the device puts the trace id on every log
 * line of the call.
 */
import { z } from "zod";

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The span this one is a child of, or this span's id: 16 lowercase hex digits, not all zero. */
  spanId: string;
  /** Trace flags, 2 hex digits (`01`: sampled). */
  flags: string;
}

const VERSION_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A later version may add fields after the four of version 00 (the spec's forward compatibility). */
const LATER_VERSION = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

/** The trace context a `traceparent` header names, or undefined when it is absent or malformed (then a new trace starts). */
export function parseTraceparent(value: string | null | undefined): TraceContext | undefined {
  if (!value || value.length > 512) return undefined;
  const v = value.trim();
  let traceId: string, spanId: string, flags: string;
  const v00 = VERSION_00.exec(v);
  if (v00) [, traceId, spanId, flags] = v00 as unknown as [string, string, string, string];
  else {
    const later = LATER_VERSION.exec(v);
    // version ff is invalid; version 00 must be exactly its four fields
    if (!later || later[1] === "ff" || later[1] === "00") return undefined;
    [, , traceId, spanId, flags] = later as unknown as [string, string, string, string, string];
  }
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags };
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.flags}`;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Random bytes drawn a few KiB at a time: one getRandomValues per call was a tenth of the gateway's CPU on a warm call. */
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > pool.length) {
      crypto.getRandomValues(pool);
      poolAt = 0;
    }
    let hex = "";
    let zero = true;
    for (let i = 0; i < bytes; i++) {
      const b = pool[poolAt + i]!;
      if (b !== 0) zero = false;
      hex += HEX[b]!;
    }
    poolAt += bytes;
    if (!zero) return hex;
  }
}

/** A new span: a child of `parent` in its trace (keeping its flags), or the root of a new, unsampled trace. */
export function childSpan(parent: TraceContext | undefined): TraceContext {
  return { traceId: parent?.traceId ?? randomHex(16), spanId: randomHex(8), flags: parent?.flags ?? "00" };
}

/** A traceparent as the device accepts it from the gateway (version 00). */
export const Traceparent = z.string().regex(VERSION_00, "traceparent must be 00-<32 hex>-<16 hex>-<2 hex>");
/** A trace id, as log lines carry it. */
export const TraceId = z.string().regex(/^[0-9a-f]{32}$/, "trace id must be 32 lowercase hex digits");
