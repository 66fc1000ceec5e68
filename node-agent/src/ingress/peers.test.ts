import { Subjects } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { Peers } from "./peers.ts";

/** A fabric that answers every lookup "no such function" and counts them. */
function fakeFabric() {
  const asked: string[] = [];
  const nc = {
    request: async (_subject: string, data: string) => {
      asked.push((JSON.parse(data) as { app: string }).app);
      return { json: () => ({ error: { code: "ERR_FUNCTION_NOT_FOUND", message: "no such function" } }) };
    },
  } as unknown as NatsConnection;
  return { asked, nc };
}

describe("peer lookups", () => {
  it("give each app its own share of the platform's lookups, so one app's flood leaves the others theirs", async () => {
    const { asked, nc } = fakeFabric();
    const peers = new Peers({ deviceId: "d", subjects: new Subjects("t"), nc: () => nc });
    const answers = [];
    for (let i = 0; i < 100; i++) answers.push(await peers.lookup("noisy", `junk-${i}`));
    const limited = answers.filter((a) => "error" in a && a.error.code === "ERR_RATE_LIMITED").length;
    expect(asked.filter((a) => a === "noisy").length).toBeLessThanOrEqual(26);
    expect(limited).toBeGreaterThanOrEqual(74);
    // another app still asks, and a not-found is kept (asked once) while a refusal of the moment is not kept
    expect(await peers.lookup("quiet", "fn")).toMatchObject({ error: { code: "ERR_FUNCTION_NOT_FOUND" } });
    await peers.lookup("quiet", "fn");
    expect(asked.filter((a) => a === "quiet")).toEqual(["quiet"]);
  });
});
