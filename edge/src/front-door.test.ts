import { describe, expect, it } from "vitest";
import { CallLimits, clientKey } from "./front-door.ts";

describe("the front door's client keys", () => {
  it("keys IPv4 as it is and IPv6 by its /64, whatever its spelling", () => {
    expect(clientKey("203.0.113.9")).toBe("203.0.113.9");
    expect(clientKey("::ffff:203.0.113.9")).toBe("203.0.113.9");
    expect(clientKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
  });

  it("counts every address of one /64 as one client", () => {
    const limits = new CallLimits({ perIpPerSecond: 0, perAppPerSecond: 0, perFunctionInFlight: 0, perIpInFlight: 2 });
    const a = limits.enterClient("2001:db8:1:2::a");
    const b = limits.enterClient("2001:db8:1:2::b");
    expect(typeof a).toBe("function");
    expect(typeof b).toBe("function");
    expect(limits.enterClient("2001:db8:1:2::c")).toMatchObject({ retryAfterSeconds: 1 });
    expect(typeof limits.enterClient("2001:db8:1:3::a")).toBe("function");
    (a as () => void)();
    expect(typeof limits.enterClient("2001:db8:1:2::c")).toBe("function");
  });
});
