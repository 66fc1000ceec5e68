import { describe, expect, it } from "vitest";
import { FunctionBindings, parseBindingList } from "./settings.ts";

describe("service bindings", () => {
  it("parses NAME=fn lists, repeated or comma separated", () => {
    expect(parseBindingList(["AUTH=auth", "STORE=store, CACHE=cache-v2"])).toEqual({ AUTH: "auth", STORE: "store", CACHE: "cache-v2" });
    expect(parseBindingList([])).toEqual({});
  });

  it("says what is wrong with a malformed or repeated binding", () => {
    expect(parseBindingList(["AUTH"])).toEqual({ error: 'binding "AUTH" must be NAME=function' });
    expect(parseBindingList(["=auth"])).toEqual({ error: 'binding "=auth" must be NAME=function' });
    expect(parseBindingList(["A=x", "A=y"])).toEqual({ error: "binding A is named twice" });
  });

  it("takes env names bound to function names, never `call`, at most 32", () => {
    expect(FunctionBindings.safeParse({ AUTH: "auth" }).success).toBe(true);
    expect(FunctionBindings.safeParse({ call: "auth" }).success).toBe(false);
    // a name an object's prototype answers to is refused by name, never dropped (which would clear the bindings)
    expect(parseBindingList(["__proto__=auth"])).toEqual({ error: "a binding may not be named __proto__" });
    expect(FunctionBindings.safeParse({ constructor: "auth" }).success).toBe(false);
    expect(FunctionBindings.safeParse({ "1X": "auth" }).success).toBe(false);
    expect(FunctionBindings.safeParse({ AUTH: "Other/Auth" }).success).toBe(false);
    expect(FunctionBindings.safeParse(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`B${i}`, "fn"]))).success).toBe(false);
  });
});
