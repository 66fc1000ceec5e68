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

  it("adds, per network the device is a member of, relaying to that network's peers and hearing its own relays there: nothing of any other", () => {
    const s = new Subjects("t1");
    const p = devicePermissions(s, "dev-1", 1_000, ["shop", "blog", "shop"]);
    const plain = devicePermissions(s, "dev-1", 1_000);
    expect(p.pub.allow.filter((x) => !plain.pub.allow.includes(x))).toEqual(["t1.net.blog.invoke.*", "t1.net.shop.invoke.*"]);
    expect(p.sub.allow.filter((x) => !plain.sub.allow.includes(x))).toEqual(["t1.net.blog.invoke.dev-1", "t1.net.shop.invoke.dev-1"]);
    // the only wildcards: its own inbox, and its own networks' relay subjects
    expect([...p.pub.allow, ...p.sub.allow].filter((x) => /[*>]/.test(x)).sort()).toEqual(["t1.inbox.dev-1.>", "t1.net.blog.invoke.*", "t1.net.shop.invoke.*"]);
    expect(() => devicePermissions(s, "dev-1", 1_000, ["a.>"])).toThrow();
    expect(() => devicePermissions(s, "dev-1", 1_000, Array.from({ length: 65 }, (_, i) => `app-${i}`))).toThrow();
    expect(s.doorDeviceOf("t1.door.dev-1.usage")).toBe("dev-1");
    expect(s.doorDeviceOf("t1.door.a>.usage")).toBeUndefined();
  });
});
