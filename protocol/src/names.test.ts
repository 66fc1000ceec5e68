import { describe, expect, it } from "vitest";
import { AppName, devicePermissions, Subjects } from "./names.ts";

describe("names", () => {
  it.each(["a", "hello", "my-app-2", "x".repeat(63)])("accepts %s", (name) => {
    expect(AppName.safeParse(name).success).toBe(true);
  });

  it.each(["", "-a", "a-", "A", "a.b", "a*", "a>", "a b", "x".repeat(64)])("rejects %j (it could break a NATS subject)", (name) => {
    expect(AppName.safeParse(name).success).toBe(false);
  });

  it("builds subjects under a prefix", () => {
    const s = new Subjects("t1");
    expect(s.invoke("dev-1")).toBe("t1.device.dev-1.invoke");
    expect(s.control("dev-1")).toBe("t1.device.dev-1.control");
    expect(s.deviceOf("t1.hb.dev-1", "hb")).toBe("dev-1");
    expect(s.deviceOf("t1.hb.dev.1", "hb")).toBeUndefined();
    expect(s.deviceOf("t2.hb.dev-1", "hb")).toBeUndefined();
  });

  it("gives a device only subjects that name it, and no wildcard outside its own inbox", () => {
    const p = devicePermissions(new Subjects("t1"), "dev-1", 1_000);
    for (const subject of [...p.pub.allow, ...p.sub.allow]) expect(subject).toContain(".dev-1");
    expect([...p.pub.allow, ...p.sub.allow].filter((s) => /[*>]/.test(s))).toEqual(["t1.inbox.dev-1.>"]);
    expect(p.resp.max).toBe(1);
    expect(() => devicePermissions(new Subjects("t1"), "a.>", 1_000)).toThrow();
  });
});
