/**
 * Summarises V8 CPU profiles (from `npm run bench -- --cpu-prof DIR`): self
 * time by function and by file/package, heaviest first.
 *
 *   node test/bench/profile-summary.ts DIR/CPU.*.cpuprofile [--top 30]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";

const Profile = z.object({
  nodes: z.array(
    z.object({
      id: z.number(),
      callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }),
    }),
  ),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
  startTime: z.number(),
  endTime: z.number(),
});

function where(url: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith("node:")) return url;
  const repo = /\/work\/[^/]+\/(.*)$/.exec(url) ?? /\/([^/]+\/src\/.*)$/.exec(url);
  return repo ? repo[1]! : url || "(native/V8)";
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string" } } });
const top = z.coerce.number().int().positive().default(25).parse(values.top ?? undefined);
for (const file of positionals) {
  const profile = Profile.parse(JSON.parse(readFileSync(file, "utf8")));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const fn = `${functionName || "(anonymous)"} ${where(url)}:${lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byFile.set(where(url), (byFile.get(where(url)) ?? 0) + us);
  }
  const show = (title: string, map: Map<string, number>) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}\n`);
    }
  };
  process.stdout.write(`\n== ${file}: ${(total / 1000).toFixed(0)} ms sampled\n`);
  show("self time by file/package", byFile);
  show("self time by function", byFn);
}
