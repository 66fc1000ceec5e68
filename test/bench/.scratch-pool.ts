import { readFileSync } from "node:fs";
import cp, { type ChildProcess } from "node:child_process";
import { syncBuiltinESMExports } from "node:module";
const orig = cp.fork;
let kid: ChildProcess | undefined;
(cp as any).fork = (m: string, a: string[], o: any) => (kid = orig(m, a, { ...o, execArgv: [...o.execArgv, "--cpu-prof", "--cpu-prof-dir=/tmp/prof-sb"] }));
syncBuiltinESMExports();
import { SandboxPool, silentLogger } from "@hearth/node-agent";
import { cpuMsOf } from "./lib/proc.ts";
const hello = readFileSync("/tmp/hello.js", "utf8");
const trivial = `export default { fetch() { return new Response("x"); } };`;
const limits = { memoryMb: 64, cpuMs: 1000, wallMs: 10000, responseBytes: 1 << 22 };
const pool = new SandboxPool({ size: 1, log: silentLogger() });
await pool.start();
const pid = pool.pids()[0]!;
for (const [name, code] of [["hello", hello], ["trivial", trivial]] as const) {
  const key = `bench/${name}@${"0".repeat(64)}`;
  await pool.load(key, code, limits);
  const req = { method: "GET", url: "http://127.0.0.1/greet?name=Ada", headers: [["host", "127.0.0.1"], ["user-agent", "autocannon"]] as [string, string][], body: null };
  for (let i = 0; i < 500; i++) await pool.invoke(key, code, "r" + i, limits, req);
  const n = 3000;
  const c0 = cpuMsOf(pid); const p0 = process.cpuUsage(); const t = performance.now();
  let inner = 0;
  for (let i = 0; i < n; i++) { const r = await pool.invoke(key, code, "r" + i, limits, req); inner += r.cpuMs; }
  const sandboxUs = ((cpuMsOf(pid) - c0) / n) * 1000;
  const p = process.cpuUsage(p0);
  console.log(name, "wall/call", (((performance.now() - t) / n) * 1000).toFixed(0), "µs; sandbox process CPU/call", sandboxUs.toFixed(0), "µs; isolate cpuTime/call", ((inner / n) * 1000).toFixed(0), "µs; supervisor CPU/call", ((p.user + p.system) / n).toFixed(0), "µs");
}
kid!.disconnect();
await new Promise((r) => setTimeout(r, 1500));
await pool[Symbol.asyncDispose]();
