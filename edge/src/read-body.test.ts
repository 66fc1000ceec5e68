import { describe, expect, it } from "vitest";
import { readBody } from "./reply.ts";

/** A Request whose body must not be read: as @hono/node-server's, where reading it builds a whole undici Request. */
function untouchable(method: string, headers: Record<string, string> = {}): Request {
  const real = new Request("http://127.0.0.1/fn/a/b", { method, headers });
  return new Proxy(real, {
    get(target, key) {
      if (key === "body") throw new Error("the body was read");
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("readBody", () => {
  it("does not read the body of a GET, a HEAD or a request saying Content-Length: 0", async () => {
    for (const request of [untouchable("GET"), untouchable("HEAD"), untouchable("POST", { "content-length": "0" }), untouchable("DELETE", { "content-length": "0" })]) {
      expect((await readBody(request, 16)).byteLength).toBe(0);
    }
  });

  it("reads a body that came without a Content-Length (an in-process Request), and refuses one over the limit", async () => {
    const body = await readBody(new Request("http://127.0.0.1/", { method: "POST", body: "hello" }), 16);
    expect(new TextDecoder().decode(body)).toBe("hello");
    await expect(readBody(new Request("http://127.0.0.1/", { method: "POST", body: "x".repeat(17) }), 16)).rejects.toMatchObject({ code: "ERR_BODY_TOO_LARGE" });
    await expect(readBody(untouchable("POST", { "content-length": "17" }), 16)).rejects.toMatchObject({ code: "ERR_BODY_TOO_LARGE" });
  });
});
