import { describe, expect, it } from "vitest";
import { readPlatformEnv } from "./index.ts";

const base = { HEARTH_TOKEN: "a-token-of-sixteen-chars" };

describe("platform environment", () => {
  it("takes defaults and freezes the result", () => {
    const env = readPlatformEnv(base);
    expect(env.HEARTH_PORT).toBe(8787);
    expect(env.REDIS_URL).toBeUndefined();
    expect(Object.isFrozen(env)).toBe(true);
  });

  it("takes an app domain, with the API on a host outside it", () => {
    const env = readPlatformEnv({ ...base, HEARTH_APP_DOMAIN: "fn.example.org", HEARTH_PUBLIC_URL: "https://api.example.org" });
    expect(env.HEARTH_APP_DOMAIN).toBe("fn.example.org");
    expect(readPlatformEnv(base).HEARTH_APP_DOMAIN).toBeUndefined();
  });

  it.each([
    [{}, "HEARTH_TOKEN"],
    [{ HEARTH_TOKEN: "short" }, "at least 16"],
    [{ ...base, HEARTH_PORT: "http" }, "HEARTH_PORT"],
    [{ ...base, HEARTH_PORT: "70000" }, "HEARTH_PORT"],
    [{ ...base, REDIS_URL: "localhost:6379" }, "redis://"],
    [{ ...base, HEARTH_LOG_LEVEL: "loud" }, "HEARTH_LOG_LEVEL"],
    [{ ...base, HEARTH_SUBJECT_PREFIX: "a.b" }, "HEARTH_SUBJECT_PREFIX"],
    [{ ...base, HEARTH_APP_DOMAIN: "https://fn.example.org" }, "HEARTH_APP_DOMAIN"],
    [{ ...base, HEARTH_APP_DOMAIN: "fn.example.org:8443" }, "HEARTH_APP_DOMAIN"],
    [{ ...base, HEARTH_APP_DOMAIN: "*.fn.example.org" }, "HEARTH_APP_DOMAIN"],
    [{ ...base, HEARTH_APP_DOMAIN: "10.0.0.1" }, "not an IP address"],
    [{ ...base, HEARTH_APP_DOMAIN: "fn.example.org", HEARTH_PUBLIC_URL: "https://fn.example.org" }, "outside HEARTH_APP_DOMAIN"],
    [{ ...base, HEARTH_APP_DOMAIN: "fn.example.org", HEARTH_PUBLIC_URL: "https://api.fn.example.org" }, "outside HEARTH_APP_DOMAIN"],
  ])("rejects %j with a message naming the problem", (env, mention) => {
    expect(() => readPlatformEnv(env)).toThrowError(expect.objectContaining({ code: "ERR_BAD_REQUEST", message: expect.stringContaining(mention) }));
  });
});
