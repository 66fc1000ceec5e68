/**
 * Prometheus metrics of one platform process (prom-client, its own
 * registry), served at `/metrics` on the API's host to the operator token
 * only: they name apps and functions, which are tenants' business
 * (docs/console.md, "Metrics").
 *
 * Calls are counted as they finish (the gateway's call hook); everything
 * else is read when Prometheus scrapes: the live device table, placements,
 * the usage publisher's and the ledger consumer's counters and lag.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { deviceState } from "../console/api.ts";
import type { DeviceRegistry } from "../identity/index.ts";
import type { Ledger } from "../ledger/index.ts";
import type { Scheduler } from "../scheduler/index.ts";
import type { Store } from "../state/index.ts";
import type { CallFacts } from "../usage/index.ts";

export interface MetricsSources {
  store: Store;
  scheduler: Scheduler;
  devices: DeviceRegistry;
  ledger?: Ledger;
  nc: NatsConnection;
}

/** Wall time of a call as the gateway saw it (s): from a warm call's millisecond to the 60 s wall cap. */
const WALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** What the gateway and fabric add to the function's own run (s): tens of microseconds to a slow hop. */
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** A counter that mirrors a running total kept elsewhere: each scrape adds what the total grew by. */
function mirror(counter: Counter<string>, labels: Record<string, string>, last: Map<string, number>, key: string, value: number): void {
  const delta = value - (last.get(key) ?? 0);
  if (delta > 0) counter.inc(labels, delta);
  last.set(key, value);
}

export class PlatformMetrics {
  readonly registry = new Registry();
  private readonly calls: Counter<"app" | "fn" | "status_class" | "door">;
  private readonly wall: Histogram<"app" | "fn">;
  private readonly overhead: Histogram<"door">;

  constructor(sources: MetricsSources) {
    const { store, scheduler, devices, ledger, nc } = sources;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: "hearth_platform_" });
    this.calls = new Counter({ name: "hearth_calls_total", help: "Calls the gateway finished, by app, function, HTTP status class (2xx..5xx) and door (host: the app's own host; path: /fn/<app>/<fn>)", labelNames: ["app", "fn", "status_class", "door"], registers });
    this.wall = new Histogram({ name: "hearth_call_wall_seconds", help: "Wall time of a call from the gateway's send to the device's answer", labelNames: ["app", "fn"], buckets: WALL_BUCKETS, registers });
    this.overhead = new Histogram({ name: "hearth_gateway_overhead_seconds", help: "The gateway's time on a call minus the device's own wall time: what the gateway and the fabric add (calls a device answered)", labelNames: ["door"], buckets: OVERHEAD_BUCKETS, registers });
    const reconnects = new Counter({ name: "hearth_fabric_reconnects_total", help: "Times this process's fabric (NATS) connection came back after a loss", registers });
    const connected = new Gauge({ name: "hearth_fabric_connected", help: "1 while this process's fabric connection is up", registers });
    connected.set(1);
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") connected.set(0);
        else if (s.type === "reconnect") {
          connected.set(1);
          reconnects.inc();
        }
      }
    })().catch(() => undefined);

    new Gauge({
      name: "hearth_devices", help: "Joined devices by region and state (serving: live with functions; idle: live without; paused; draining; offline: joined, not heard from; revoked)", labelNames: ["region", "state"], registers,
      async collect() {
        this.reset();
        const live = new Map(scheduler.liveDevices().map((d) => [d.heartbeat.deviceId, d]));
        const ids = new Set([...(await devices.deviceIds()), ...live.keys()]);
        for (const id of ids) {
          const entry = live.get(id);
          const record = entry ? undefined : await devices.device(id);
          const region = entry?.heartbeat.region ?? record?.region ?? "unknown";
          const state = deviceState(record?.revokedAt !== undefined, entry, scheduler.awayDevice(id));
          this.inc({ region, state });
        }
      },
    });
    new Gauge({
      name: "hearth_placements_pending", help: "Functions no live device serves at their deployed version yet (the API's status pending)", registers,
      async collect() {
        const functions = await store.listFunctions();
        const placements = await store.getPlacements(functions);
        let pending = 0;
        functions.forEach((f, i) => {
          const placed = Object.entries(placements[i]!.devices);
          if (!placed.some(([id, p]) => p.version === f.version && scheduler.liveDevice(id))) pending++;
        });
        this.set(pending);
      },
    });
    // counters mirror the publisher's and the consumer's running totals, each when it is collected
    const seen = new Map<string, number>();
    new Counter({
      name: "hearth_usage_records_total", help: "Usage records by what became of them: stored (on the call's path or from the retry queue), duplicate, deferred (not acked in time on the call's path), dropped", labelNames: ["result"], registers,
      collect() {
        const p = ledger?.publisher;
        if (!p) return;
        mirror(this, { result: "stored" }, seen, "published", p.stats.published);
        mirror(this, { result: "duplicate" }, seen, "duplicates", p.stats.duplicates);
        mirror(this, { result: "deferred" }, seen, "deferred", p.stats.deferred);
        mirror(this, { result: "dropped" }, seen, "dropped", p.stats.dropped);
      },
    });
    new Counter({
      name: "hearth_ledger_folded_records_total", help: "Usage records this process's ledger consumer folded into the accounts, by result", labelNames: ["result"], registers,
      collect() {
        const c = ledger?.consumer;
        if (!c) return;
        mirror(this, { result: "applied" }, seen, "applied", c.stats.applied);
        mirror(this, { result: "duplicate" }, seen, "folded-duplicates", c.stats.duplicates);
        mirror(this, { result: "invalid" }, seen, "invalid", c.stats.invalid);
      },
    });
    new Counter({
      name: "hearth_usage_commits_total", help: "Messages the gateway stored in the usage stream on the call's path, each holding one record or a group commit's records (records per commit: hearth_usage_records_total{result=\"stored\"} over this)", registers,
      collect() {
        const p = ledger?.publisher;
        if (p) mirror(this, {}, seen, "commits", p.stats.commits);
      },
    });
    new Counter({
      name: "hearth_ledger_folds_total", help: "Redis round trips of this process's ledger consumer, each folding one record or a group of them", registers,
      collect() {
        const c = ledger?.consumer;
        if (c) mirror(this, {}, seen, "folds", c.stats.folds);
      },
    });
    new Gauge({
      name: "hearth_usage_backlog_records", help: "Usage records waiting to be stored in JetStream (the retry queue)", registers,
      collect() {
        this.set(ledger?.publisher?.backlog ?? 0);
      },
    });
    new Gauge({
      name: "hearth_ledger_lag_records", help: "Usage records in the stream the ledger has not folded and acknowledged yet (-1: unknown)", registers,
      async collect() {
        this.set(ledger?.consumer ? await ledger.consumer.lag().catch(() => -1) : -1);
      },
    });
    new Gauge({
      name: "hearth_ledger_metering", help: "1 when calls are metered (JetStream usage stream), 0 when not", registers,
      collect() {
        this.set(ledger?.metering ? 1 : 0);
      },
    });
  }

  /** The gateway's call hook: counts a finished call (before its usage record is stored). */
  observeCall(facts: CallFacts): void {
    const door = facts.door ?? "path";
    this.calls.inc({ app: facts.app, fn: facts.fn, status_class: `${Math.floor(facts.status / 100)}xx`, door });
    this.wall.observe({ app: facts.app, fn: facts.fn }, facts.wallMs / 1000);
    const deviceWall = Number(facts.device?.wallMs);
    if (facts.gatewayMs !== undefined && facts.device?.wallMs !== undefined && Number.isFinite(deviceWall)) {
      this.overhead.observe({ door }, Math.max(0, facts.gatewayMs - deviceWall) / 1000);
    }
  }

  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
