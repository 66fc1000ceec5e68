/**
 * The agent's Prometheus metrics, opt-in (`--metrics-port`, `metricsPort`):
 * served on 127.0.0.1 only, for the owner's own Prometheus or node
 * exporter setup. They say what the device does (calls, CPU-seconds, queue,
 * sandbox restarts, warm isolates and their memory), never which functions
 * or whose: no label carries an app or function name.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { Agent } from "../agent/index.ts";

/** Adds to a counter what a running total kept elsewhere grew by since the last scrape. */
function mirror(counter: Counter<string>, labels: Record<string, string>, last: Map<string, number>, key: string, value: number): void {
  const delta = value - (last.get(key) ?? 0);
  if (delta > 0) counter.inc(labels, delta);
  last.set(key, value);
}

export function agentRegistry(agent: Agent): Registry {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: "hearth_agent_process_" });
  const seen = new Map<string, number>();
  // counters mirror the agent's running totals, each when it is collected
  new Counter({
    name: "hearth_agent_calls_total", help: "Calls this device ran, by outcome (ok, error)", labelNames: ["outcome"], registers,
    collect() {
      mirror(this, { outcome: "ok" }, seen, "ok", agent.served.calls - agent.served.errors);
      mirror(this, { outcome: "error" }, seen, "error", agent.served.errors);
    },
  });
  new Counter({
    name: "hearth_agent_cpu_seconds_total", help: "CPU-seconds functions used on this device, as it metered them (the platform's ledger is what credits)", registers,
    collect() {
      mirror(this, {}, seen, "cpu", agent.served.cpuMs / 1000);
    },
  });
  new Counter({
    name: "hearth_agent_sandbox_restarts_total", help: "Sandbox processes restarted after they died", registers,
    collect() {
      mirror(this, {}, seen, "restarts", agent.pool.restarts);
    },
  });
  new Gauge({
    name: "hearth_agent_state", help: "1 for the state the device is in: serving, paused or draining", labelNames: ["state"], registers,
    collect() {
      this.reset();
      this.set({ state: agent.status().state }, 1);
    },
  });
  new Gauge({ name: "hearth_agent_active_calls", help: "Calls running or waiting for a core now", registers, collect() { this.set(agent.activeCalls); } });
  new Gauge({ name: "hearth_agent_queue_depth", help: "Calls waiting for a free core", registers, collect() { this.set(agent.gate.queued); } });
  new Gauge({ name: "hearth_agent_cores_in_use", help: "Donated cores running a call now", registers, collect() { this.set(agent.gate.inUse); } });
  new Gauge({ name: "hearth_agent_cores_donated", help: "Cores the owner donated", registers, collect() { this.set(agent.config.cores); } });
  new Gauge({ name: "hearth_agent_warm_isolates", help: "Warm isolates held (one per function version)", registers, collect() { this.set(agent.memory.count); } });
  new Gauge({ name: "hearth_agent_warm_isolate_memory_bytes", help: "Memory the warm isolates may use (their limits, which the donated memory bounds)", registers, collect() { this.set(agent.memory.usedMb * 1024 * 1024); } });
  new Gauge({ name: "hearth_agent_memory_donated_bytes", help: "Memory the owner donated to functions", registers, collect() { this.set(agent.config.memoryMb * 1024 * 1024); } });
  new Gauge({ name: "hearth_agent_sandbox_processes", help: "Sandbox processes in the pool", registers, collect() { this.set(agent.pool.size); } });
  new Gauge({ name: "hearth_agent_fabric_connected", help: "1 while the device is on the fabric", registers, collect() { this.set(agent.status().connected ? 1 : 0); } });
  return registry;
}

/** An HTTP server on 127.0.0.1:`port` answering `GET /metrics` (and nothing else). */
export async function startAgentMetrics(agent: Agent, port: number): Promise<Server & AsyncDisposable & { port: number }> {
  const registry = agentRegistry(agent);
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics is served here\n");
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { "content-type": registry.contentType, "cache-control": "no-store" }).end(body),
      () => res.writeHead(500, { "content-type": "text/plain" }).end("could not collect metrics\n"),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return Object.assign(server, { port: (server.address() as AddressInfo).port, [Symbol.asyncDispose]: close });
}
