import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, HearthError } from "./errors.ts";

describe("error registry", () => {
  const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");

  it.each(Object.keys(ERROR_CODES))("%s is documented in docs/errors.md", (code) => {
    expect(doc).toMatch(new RegExp(`^## ${code}$`, "m"));
  });

  it("documents no code that does not exist", () => {
    const documented = [...doc.matchAll(/^## (ERR_[A-Z_]+)$/gm)].map((m) => m[1]);
    expect(documented.filter((code) => !(code! in ERROR_CODES))).toEqual([]);
  });

  it("round-trips over the wire and maps unknown codes to ERR_BAD_MESSAGE", () => {
    const error = HearthError.fromWire(new HearthError("ERR_CPU_LIMIT", "too much").toWire());
    expect(error).toBeInstanceOf(HearthError);
    expect(error.code).toBe("ERR_CPU_LIMIT");
    expect(error.status).toBe(504);
    expect(HearthError.fromWire({ code: "ERR_NOPE", message: "x" }).code).toBe("ERR_BAD_MESSAGE");
  });
});
