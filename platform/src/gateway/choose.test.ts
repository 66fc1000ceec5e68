import { describe, expect, it } from "vitest";
import type { DeviceEntry } from "../state/index.ts";
import { chooseDevices, distanceKm } from "./index.ts";

const BERLIN = { label: "berlin", lat: 52.52, lon: 13.4 };
const LISBON = { label: "lisbon", lat: 38.72, lon: -9.14 };

function fleet(devices: Record<string, { region: string; location: typeof BERLIN; rtt: number; version?: string; cores?: number }>) {
  const placement = { devices: Object.fromEntries(Object.entries(devices).map(([id, d]) => [id, { version: d.version ?? "v1", placedAt: 0, limits: "{}" }])) };
  const entry = { record: { version: "v1" }, placement } as unknown as Parameters<typeof chooseDevices>[0];
  const live = (id: string) => {
    const d = devices[id];
    return d ? ({ heartbeat: { deviceId: id, region: d.region, location: d.location, cores: d.cores ?? 2 }, lastSeen: Date.now() } as unknown as DeviceEntry) : undefined;
  };
  const nearness = { rttOf: (id: string) => devices[id]?.rtt, penalty: () => 0 };
  return { entry, live, nearness };
}

/** How often each device comes first over many choices (ties are broken at random). */
function firsts(pick: () => string[], rounds = 400): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < rounds; i++) {
    const first = pick()[0]!;
    out.set(first, (out.get(first) ?? 0) + 1);
  }
  return out;
}

describe("choosing the device for a call", () => {
  it("puts the own region first, then the nearest by round trip, and old versions last", () => {
    const { entry, live, nearness } = fleet({
      far: { region: "eu", location: BERLIN, rtt: 40 },
      near: { region: "eu", location: BERLIN, rtt: 3 },
      abroad: { region: "us", location: BERLIN, rtt: 1 },
      old: { region: "eu", location: BERLIN, rtt: 1, version: "v0" },
    });
    expect(chooseDevices(entry, live, new Map(), "eu", nearness)).toEqual(["near", "far", "abroad", "old"]);
  });

  it("lets devices about equally near share the calls", () => {
    const { entry, live, nearness } = fleet({ a: { region: "eu", location: BERLIN, rtt: 2.1 }, b: { region: "eu", location: BERLIN, rtt: 1.4 } });
    const by = firsts(() => chooseDevices(entry, live, new Map(), "eu", nearness));
    expect(by.get("a") ?? 0).toBeGreaterThan(100);
    expect(by.get("b") ?? 0).toBeGreaterThan(100);
  });

  it("tips the share towards the device nearer the caller, but never beats a clearly nearer round trip with it", () => {
    const { entry, live, nearness } = fleet({
      berlin: { region: "eu", location: BERLIN, rtt: 2 },
      lisbon: { region: "eu", location: LISBON, rtt: 2 },
      // claims to be next to the caller, but is a step farther from the gateway
      liar: { region: "eu", location: LISBON, rtt: 9 },
    });
    const caller = { lat: 38.7, lon: -9.1 };
    const by = firsts(() => chooseDevices(entry, live, new Map(), "eu", nearness, caller));
    expect(by.get("lisbon") ?? 0).toBeGreaterThanOrEqual(360);
    expect(by.get("liar") ?? 0).toBe(0);
    expect(distanceKm(BERLIN, LISBON)).toBeGreaterThan(2_000);
  });

  it("spills from the nearest device once this gateway's calls fill its cores, instead of queueing there", () => {
    // a round trip measured during a spike: near-equal devices 20 ms apart
    const { entry, live, nearness } = fleet({ near: { region: "eu", location: BERLIN, rtt: 1, cores: 2 }, next: { region: "eu", location: BERLIN, rtt: 21, cores: 2 } });
    expect(chooseDevices(entry, live, new Map([["near", 1]]), "eu", nearness)[0]).toBe("near");
    expect(chooseDevices(entry, live, new Map([["near", 2]]), "eu", nearness)[0]).toBe("next");
    // both full: the nearer again
    expect(chooseDevices(entry, live, new Map([["near", 2], ["next", 2]]), "eu", nearness)[0]).toBe("near");
  });
});
