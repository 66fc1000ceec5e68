import { Subjects } from "@hearth/protocol";
import RedisMock from "ioredis-mock";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { DeviceRegistry } from "./devices.ts";
import { FabricAuthority } from "./fabric.ts";
import { AppNetworks, mayServe } from "./networks.ts";

function networks(prefix: string) {
  const redis = new RedisMock() as unknown as Redis;
  const devices = new DeviceRegistry({ redis, prefix, authority: FabricAuthority.generate(), subjects: new Subjects("t"), publicNatsUrl: "nats://127.0.0.1:1" });
  const changed: string[] = [];
  const nets = new AppNetworks({ redis, prefix, devices, changed: async (id) => void changed.push(id) });
  return { redis, devices, nets, changed };
}

describe("application networks", () => {
  it("redeems an invite once, keeps only its hash, and puts the network in the credential record", async () => {
    const { redis, devices, nets } = networks("nets1:");
    const { invite, app, expiresAt } = await nets.invite("shop", 3600);
    expect(app).toBe("shop");
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(3_500_000);
    expect(JSON.stringify(await redis.keys("*"))).not.toContain(invite);
    expect(await nets.redeem("d1", invite)).toBe("shop");
    await expect(nets.redeem("d2", invite)).rejects.toMatchObject({ code: "ERR_INVITE_INVALID" });
    expect(await devices.networks("d1")).toEqual(["shop"]);
    expect(await nets.invitedApps("d1")).toEqual(["shop"]);
    expect((await nets.view("shop")).members.map((m) => m.deviceId)).toEqual(["d1"]);
  });

  it("takes a device out of the network, its credential record and its placements' eligibility, and says it changed", async () => {
    const { devices, nets, changed } = networks("nets2:");
    await nets.redeem("d1", (await nets.invite("shop")).invite);
    await nets.setPrivate("shop", true);
    expect(mayServe(await nets.eligibility("shop"), "d1", false)).toBe(true);
    expect(await nets.remove("shop", "d1")).toBe(true);
    expect(changed).toEqual(["d1"]);
    expect(await devices.networks("d1")).toEqual([]);
    expect(mayServe(await nets.eligibility("shop"), "d1", true)).toBe(false);
    expect(await nets.remove("shop", "d1")).toBe(false);
    expect(changed).toEqual(["d1"]);
  });

  it("serves a public app from the public pool unless the owner opted out; a private one only on its members", () => {
    const open = { private: false, members: new Set(["m"]) };
    const closed = { private: true, members: new Set(["m"]) };
    expect(mayServe(open, "p", undefined)).toBe(true);
    expect(mayServe(open, "p", false)).toBe(false);
    expect(mayServe(open, "m", false)).toBe(true);
    expect(mayServe(closed, "p", true)).toBe(false);
    expect(mayServe(closed, "m", undefined)).toBe(true);
  });
});
