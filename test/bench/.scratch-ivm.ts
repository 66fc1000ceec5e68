import ivm from "isolated-vm";
const isolate = new ivm.Isolate({ memoryLimit: 64 });
const context = await isolate.createContext();
const fn = (await context.eval(`(async function (req) { const name = req.url.split("=")[1]; return { status: 200, headers: [["content-type","application/json"]], body: JSON.stringify({ message: "Hello, " + name }) }; })`, { reference: true })) as ivm.Reference<(r: unknown) => Promise<unknown>>;
const req = { method: "GET", url: "http://x/greet?name=Ada", headers: [["host", "x"]], body: null, limit: 1000 };
async function run(name: string, n: number, f: () => Promise<unknown>) {
  for (let i = 0; i < 500; i++) await f();
  const c = process.cpuUsage(); const t = performance.now();
  for (let i = 0; i < n; i++) await f();
  const d = process.cpuUsage(c);
  console.log(name.padEnd(50), "wall", (((performance.now() - t) / n) * 1000).toFixed(1), "µs  cpu", ((d.user + d.system) / n).toFixed(1), "µs");
}
await run("apply promise+copy (ExternalCopy arg)", 5000, () => fn.apply(undefined, [new ivm.ExternalCopy(req).copyInto()], { result: { promise: true, copy: true }, timeout: 1000 }));
await run("applySync-ish: apply copy args (no promise fn)", 5000, async () => { const r = await fn.apply(undefined, [new ivm.ExternalCopy(req).copyInto()], { result: { promise: true, copy: true } }); return r; });
const poll = async () => { const p = setInterval(() => isolate.cpuTime, 5); const w = setTimeout(() => 0, 10000); const r = await fn.apply(undefined, [new ivm.ExternalCopy(req).copyInto()], { result: { promise: true, copy: true }, timeout: 1000 }); clearInterval(p); clearTimeout(w); return r; };
await run("same + setInterval/setTimeout per call", 5000, poll);
isolate.dispose();
