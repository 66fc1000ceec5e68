import { describe, expect, it } from "vitest";
import { resolveAgentConfig } from "./index.ts";

const base = { natsUrl: "nats://127.0.0.1:4222", deviceId: "dev-1", dataDir: "/tmp/hearth-test-agent" };

describe("agent config", () => {
  it("has modest defaults: not all cores, 512 MiB, pause on battery, no schedule", () => {
    const c = resolveAgentConfig({ flags: base });
    expect(c.cores).toBeGreaterThanOrEqual(1);
    expect(c.memoryMb).toBe(512);
    expect(c.pauseOnBattery).toBe(true);
    expect(c.idleOnly).toBe(false);
    expect(c.schedule).toEqual([]);
    expect(c.publicPool).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("lets flags beat the file, the file beat the environment, the environment beat the joined identity", () => {
    const identity = { deviceId: "joined", ownerId: "ada", region: "eu", natsUrl: "nats://joined:4222", subjectPrefix: "hearth" };
    const c = resolveAgentConfig({
      identity,
      env: { HEARTH_NATS_URL: "nats://env:4222" },
      file: { memoryMb: 128, cores: 1 },
      flags: { memoryMb: 256, dataDir: "/tmp/x" },
    });
    expect(c).toMatchObject({ deviceId: "joined", ownerId: "ada", region: "eu", natsUrl: "nats://env:4222", memoryMb: 256, cores: 1 });
  });

  it("keeps the door closed unless the owner opens it, and takes host:port forms", () => {
    expect(resolveAgentConfig({ flags: base }).listen).toBeUndefined();
    for (const listen of ["127.0.0.1:8787", "0.0.0.0:0", "[::]:8787", "localhost:80"]) {
      expect(resolveAgentConfig({ flags: { ...base, listen } }).listen).toBe(listen);
    }
    for (const listen of ["8787", "http://0.0.0.0:8787", "host:99999", "a b:1"]) {
      expect(() => resolveAgentConfig({ flags: { ...base, listen } })).toThrow(/listen/);
    }
  });

  it("advertises a door only with one open, at a clean http(s) URL, and says which flag was wrong", () => {
    const listen = "0.0.0.0:8787";
    expect(resolveAgentConfig({ flags: { ...base, listen, advertise: "https://door.example.net:8443/" } }).advertise).toBe("https://door.example.net:8443");
    expect(() => resolveAgentConfig({ flags: { ...base, advertise: "https://door.example.net" } })).toThrow(/advertise needs a door to advertise: open one with --listen/);
    for (const [advertise, why] of [
      ["door.example.net", /absolute URL/],
      ["ftp://door.example.net", /http:\/\/ or https:\/\//],
      ["https://me:secret@door.example.net", /user name or password/],
      ["https://door.example.net/?x=1", /query or a fragment/],
    ] as const) {
      expect(() => resolveAgentConfig({ flags: { ...base, listen, advertise } })).toThrow(why);
      expect(() => resolveAgentConfig({ flags: { ...base, listen, advertise } })).toThrow(/flag --advertise/);
    }
  });

  it("parses schedule windows", () => {
    const c = resolveAgentConfig({ flags: { ...base, schedule: ["weekdays 22:00-07:00"] } });
    expect(c.schedule[0]).toMatchObject({ days: [1, 2, 3, 4, 5], start: 22 * 60, end: 7 * 60 });
  });

  it.each([
    [{ cores: 0 }, /cores: cores must be more than 0/],
    [{ cores: 100_000 }, /cores: cores must be at most \d+/],
    [{ cores: "two" }, /cores: .*number/],
    [{ cores: 1.5 }, /cores: cores must be a whole number/],
    [{ memoryMb: 10 }, /memoryMb: memoryMb must be at least 64/],
    [{ memoryMb: 1e12 }, /memoryMb: memoryMb must be at most this machine's memory/],
    [{ natsUrl: "http://x" }, /natsUrl: natsUrl must be a nats:\/\//],
    [{ deviceId: "a b" }, /deviceId: device id must be/],
    [{ schedule: ["weekdays"] }, /schedule.0: 'weekdays' is not '<days> HH:MM-HH:MM'/],
    [{ schedule: "weekdays 22:00-07:00" }, /schedule: .*array/],
    [{ idleOnly: "yes" }, /idleOnly: .*boolean/],
    [{ idlePauseAbove: 1.5 }, /idlePauseAbove: idlePauseAbove is a fraction of the machine, at most 1/],
    [{ idlePauseAbove: 0.3, idleResumeBelow: 0.4 }, /idleResumeBelow: idleResumeBelow must be below idlePauseAbove/],
    [{ idleForMs: -1 }, /idleForMs: /],
    [{ pauseOnBattery: 1 }, /pauseOnBattery: .*boolean/],
    [{ publicPool: "no" }, /publicPool: .*boolean/],
    [{ queueMax: -1 }, /queueMax: /],
    [{ queueWaitMs: 1e9 }, /queueWaitMs: /],
    [{ drainGraceMs: -5 }, /drainGraceMs: /],
    [{ heartbeatMs: 5 }, /heartbeatMs: /],
    [{ dataDir: "" }, /dataDir: dataDir must not be empty/],
    [{ logLevel: "loud" }, /logLevel: /],
    [{ coress: 2 }, /coress/],
    [{ sandboxes: 0 }, /sandboxes: /],
    [{ checkMs: 1 }, /checkMs: /],
    [{ ownerId: "" }, /ownerId: /],
    [{ region: "x".repeat(65) }, /region: /],
    [{ location: { label: "home", lat: 91, lon: 0 } }, /location.lat: /],
    [{ subjectPrefix: "Bad Prefix" }, /subjectPrefix: /],
  ])("refuses %j with an error naming the key", (bad, message) => {
    let error: unknown;
    try {
      resolveAgentConfig({ flags: { ...base, ...bad } });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: "ERR_BAD_REQUEST", message: expect.stringMatching(message) });
  });

  it("says which flag, file key or variable set the bad value", () => {
    expect(() => resolveAgentConfig({ flags: { ...base, memoryMb: 10 } })).toThrow(/\(set by flag --memory-mb\)/);
    expect(() => resolveAgentConfig({ flags: base, file: { cores: 0 }, filePath: "/etc/hearth/agent.json" })).toThrow(
      /\(set by key "cores" of the config file \/etc\/hearth\/agent\.json\)/,
    );
    expect(() => resolveAgentConfig({ env: { HEARTH_LOG_LEVEL: "loud", HEARTH_NATS_URL: "nats://x:4222" }, flags: { deviceId: "d" } })).toThrow(
      /logLevel: .*\(set by environment variable HEARTH_LOG_LEVEL\)/,
    );
    expect(() => resolveAgentConfig({ flags: { ...base, natsUrl: "http://x" } })).toThrow(/\(set by flag --nats\)/);
  });

  it("says how to get a fabric URL when there is none", () => {
    expect(() => resolveAgentConfig({ flags: { deviceId: "x" } })).toThrow(/hearth-agent join <platform-url> --token/);
  });
});
