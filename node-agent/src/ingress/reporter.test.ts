import { Subjects, type DoorCall } from "@hearth/protocol";
import type { NatsConnection } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../log/index.ts";
import { UsageReporter } from "./reporter.ts";

const call = (id: string): DoorCall => ({
  id, requestId: "r", app: "a", fn: "f", version: "0".repeat(64), at: Date.now(), wallMs: 1, requestBytes: 0, responseBytes: 0, status: 200, cold: false, relayed: false,
});

/** A fabric connection whose door usage subject answers with `answer()` (and records what it was sent). */
function fabric(answer: () => object | Error) {
  const sent: { calls: DoorCall[] }[] = [];
  const nc = {
    request: async (_subject: string, data: string) => {
      const reply = answer();
      if (reply instanceof Error) throw reply;
      sent.push(JSON.parse(data) as { calls: DoorCall[] });
      return { json: () => reply };
    },
  } as unknown as NatsConnection;
  return { nc, sent };
}

describe("door usage reporter", () => {
  it("keeps sending after a flush that had nothing to send", async () => {
    const { nc, sent } = fabric(() => ({ ok: true }));
    using reporter = new UsageReporter({ deviceId: "d", subjects: new Subjects("t"), nc: () => nc, log: silentLogger() });
    await reporter.flush();
    reporter.call(call("00000000-0000-4000-8000-000000000001"));
    await reporter.flush();
    expect(sent.flatMap((b) => b.calls.map((c) => c.id))).toEqual(["00000000-0000-4000-8000-000000000001"]);
    expect(reporter.unreported).toBe(0);
  });

  it("keeps what the platform did not acknowledge, and sends it again with the same id", async () => {
    let up = false;
    const { nc, sent } = fabric(() => (up ? { ok: true } : new Error("no responders")));
    using reporter = new UsageReporter({ deviceId: "d", subjects: new Subjects("t"), nc: () => nc, log: silentLogger() });
    reporter.call(call("00000000-0000-4000-8000-000000000002"));
    await reporter.flush();
    expect(reporter.unreported).toBe(1);
    up = true;
    await reporter.flush();
    expect(reporter.unreported).toBe(0);
    expect(sent.flatMap((b) => b.calls.map((c) => c.id))).toEqual(["00000000-0000-4000-8000-000000000002"]);
  });
});
