import { createHash, randomUUID } from "node:crypto";
import { AppName, FunctionName, HttpMethod, InvokeMeta, INVOKE_HEADERS, UsageRecord } from "@hearth/protocol";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { FromSandbox, ToSandbox } from "../../node-agent/src/sandbox/messages.ts";

function time(name: string, n: number, f: () => unknown) {
  for (let i = 0; i < 2000; i++) f();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  console.log(name.padEnd(40), (((performance.now() - t) / n) * 1000).toFixed(2), "µs");
}
const version = "a".repeat(64);
const meta = { requestId: randomUUID(), app: "bench", fn: "hello", version, method: "GET", url: "http://127.0.0.1:1234/greet?name=Ada", deadline: String(Date.now() + 10000) };
time("InvokeMeta.safeParse", 50000, () => InvokeMeta.safeParse(meta));
time("AppName+FunctionName+HttpMethod.safeParse", 50000, () => { AppName.safeParse("bench"); FunctionName.safeParse("hello"); HttpMethod.safeParse("GET"); });
const limits = { memoryMb: 64, cpuMs: 1000, wallMs: 10000, responseBytes: 4194304 };
const inv = { type: "invoke", id: 1, key: `bench/hello@${version}`, requestId: meta.requestId, limits, request: { method: "GET", url: meta.url, headers: [["host", "127.0.0.1"], ["user-agent", "autocannon"], ["accept", "*/*"]], body: null } };
const keys = Object.keys(ToSandbox.def ?? {});
time("ToSandbox.safeParse(invoke)", 50000, () => ToSandbox.safeParse(inv));
const res = { type: "result", id: 1, ok: true, status: 200, headers: [["content-type", "application/json"]], body: new Uint8Array(60), cpuMs: 0.1, wallMs: 0.3, cold: false };
time("FromSandbox.safeParse(result)", 50000, () => FromSandbox.safeParse(res));
time("sha1(key) processFor", 50000, () => createHash("sha1").update(inv.key).digest().readUInt32BE(0));
time("randomUUID", 50000, () => randomUUID());
time("2x new URL", 50000, () => { const u = new URL("http://127.0.0.1:1234/fn/bench/hello/greet?name=Ada"); new URL(u.pathname.slice(15) + u.search, u.origin); });
time("nats headers build+encode (gateway)", 50000, () => {
  const h = natsHeaders();
  h.set(INVOKE_HEADERS.requestId, meta.requestId); h.set(INVOKE_HEADERS.app, "bench"); h.set(INVOKE_HEADERS.fn, "hello"); h.set(INVOKE_HEADERS.version, version);
  h.set(INVOKE_HEADERS.method, "GET"); h.set(INVOKE_HEADERS.url, meta.url); h.set(INVOKE_HEADERS.deadline, meta.deadline);
  h.append("Http-host", "127.0.0.1:1234"); h.append("Http-user-agent", "x");
  (h as unknown as { encode(): Uint8Array }).encode();
});
console.log(Object.keys(UsageRecord.shape ?? {}).length);
