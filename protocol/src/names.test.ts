import { describe, expect, it } from "vitest";
import { AppName, Subjects } from "./names.ts";

describe("names", () => {
  it.each(["a", "hello", "my-app-2", "x".repeat(63)])("accepts %s", (name) => {
    expect(AppName.safeParse(name).success).toBe(true);
  });

  it.each(["", "-a", "a-", "A", "a.b", "a*", "a>", "a b", "x".repeat(64)])("rejects %j (it could break a NATS subject)", (name) => {
    expect(AppName.safeParse(name).success).toBe(false);
  });

  it("builds subjects under a prefix", () => {
    const s = new Subjects("t1");
    expect(s.invoke("app", "fn")).toBe("t1.invoke.app.fn");
    expect(s.control("dev-1")).toBe("t1.device.dev-1.control");
  });
});
