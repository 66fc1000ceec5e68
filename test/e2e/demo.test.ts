/**
 * `npm run demo` as a user runs it: it prints `Function ready: <url>` with a
 * URL that answers, the console's URL, two `export` lines that work in another terminal, and
 * Ctrl-C stops every process it started. (The bootstrap part of `npm run
 * demo` is what runs this very suite, so here the script runs directly.)
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "@hearth/devkit";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);

/** Every live descendant of `pid`, from /proc. */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // the command name may hold spaces and parentheses: the fields after the last ')' are fixed
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z") parentOf.set(Number(entry), Number(fields[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

describe("npm run demo", () => {
  it("prints a URL that answers and export lines that work, and Ctrl-C stops everything it started", async () => {
    const logDir = mkdtempSync(join(tmpdir(), "hearth-demo-"));
    const port = await freePort();
    const demo = spawn(process.execPath, [join(ROOT, "scripts/demo.ts")], {
      cwd: ROOT,
      env: { ...process.env, HEARTH_PORT: String(port), HEARTH_DEMO_LOG_DIR: logDir },
      stdio: ["ignore", "pipe", "pipe"],
      // its own process group, like a job in a terminal: Ctrl-C signals the whole group
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    demo.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    demo.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => demo.once("exit", (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no 'Function ready' line in 60 s:\n${stdout}\n${stderr}`)), 60_000);
        const check = () => {
          if (/^Press Ctrl-C to stop\.$/m.test(stdout)) {
            clearTimeout(timer);
            resolve();
          }
        };
        demo.stdout.on("data", check);
        void exited.then((code) => reject(new Error(`the demo exited with ${code}:\n${stdout}\n${stderr}`)));
      });

      const url = /^Function ready: (\S+)$/m.exec(stdout)?.[1];
      expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/fn/demo/hello/`));
      const answer = await fetch(url!);
      expect(answer.status).toBe(200);
      expect(await answer.json()).toMatchObject({ message: "Hello, Ada!" });

      // the console's URL, on the platform's own origin, answers with the console
      const consoleUrl = /^Console: (\S+)$/m.exec(stdout)?.[1];
      expect(consoleUrl).toBe(`http://127.0.0.1:${port}/console/`);
      const page = await fetch(consoleUrl!);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain("<title>Hearth console</title>");

      // the two export lines, pasted into another terminal, let the CLI talk to this Hearth
      const exported = Object.fromEntries([...stdout.matchAll(/^export (HEARTH_PLATFORM_URL|HEARTH_TOKEN)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
      expect(Object.keys(exported).sort()).toEqual(["HEARTH_PLATFORM_URL", "HEARTH_TOKEN"]);
      const hostNode = process.env["HEARTH_HOST_NODE"] ?? process.execPath;
      const listed = await run(hostNode, [join(ROOT, "sdk/bin/hearth.js"), "list"], { env: { ...process.env, ...exported } });
      expect(listed.stdout).toMatch(/demo\/hello/);
      // a developer's token, never the operator's
      expect(exported["HEARTH_TOKEN"]).toMatch(/^hth_/);
      const me = await run(hostNode, [join(ROOT, "sdk/bin/hearth.js"), "whoami"], { env: { ...process.env, ...exported } });
      expect(me.stdout).toMatch(/^demo \(dev_[0-9a-f]{12}\) at /);

      const started = descendants(demo.pid!);
      expect(started.length).toBeGreaterThanOrEqual(5); // nats-server, platform, 3 agents (and their sandbox processes)
      const ctrlC = Date.now();
      process.kill(-demo.pid!, "SIGINT"); // what the terminal does on Ctrl-C: every process of the job gets it
      expect(await exited).toBe(0);
      console.log(`demo stopped ${Date.now() - ctrlC} ms after Ctrl-C`);
      expect(stdout).toMatch(/^Stopped\.$/m);
      expect(started.filter(alive)).toEqual([]);
    } finally {
      if (demo.exitCode === null) process.kill(-demo.pid!, "SIGKILL");
      rmSync(logDir, { recursive: true, force: true });
    }
  }, 90_000);
});
