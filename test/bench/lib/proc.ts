/**
 * What the kernel knows about a process: CPU time (utime + stime from
 * /proc/<pid>/stat), resident memory (VmRSS), and its descendants. Linux
 * only; the bench measures cost per call with these, because CPU time summed
 * over every process in the path is stable where wall time is noisy.
 */
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux the bench runs on (getconf CLK_TCK)

function statFields(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
    // the command name is in parentheses and may hold spaces: split after it
    return raw.slice(raw.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far, in ms; 0 once it is gone. */
export function cpuMsOf(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  // after the name: state(0) ppid(1) ... utime(11) stime(12)
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
}

/** Parent pid of a process, or undefined when it is gone. */
function ppidOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

/** Every live descendant of `root` (children, grandchildren...), found by scanning /proc for ppid. */
export function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const ppid = ppidOf(pid);
    if (ppid === undefined) continue;
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const next = children.get(queue.shift()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** `root` and all its descendants. */
export function treeOf(root: number): number[] {
  return [root, ...descendantsOf(root)];
}

/** Resident set size of a process in bytes (VmRSS), or 0 once it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time spent by a set of processes between start() and stop(). The set
 * is a function, read again at stop(), so a child born during the window (a
 * restarted sandbox) is counted whole; a process that died during it is lost.
 */
export class CpuMeter {
  private readonly pids: () => number[];
  private readonly before = new Map<number, number>();
  private startedAt = 0;

  constructor(pids: () => number[]) {
    this.pids = pids;
  }

  start(): void {
    this.before.clear();
    for (const pid of this.pids()) this.before.set(pid, cpuMsOf(pid));
    this.startedAt = performance.now();
  }

  /** CPU ms used in the window, per pid and in total, and the wall ms it lasted. */
  stop(): { totalMs: number; wallMs: number; byPid: Map<number, number> } {
    const byPid = new Map<number, number>();
    let totalMs = 0;
    for (const pid of new Set([...this.before.keys(), ...this.pids()])) {
      const used = Math.max(0, cpuMsOf(pid) - (this.before.get(pid) ?? 0));
      byPid.set(pid, used);
      totalMs += used;
    }
    return { totalMs, wallMs: performance.now() - this.startedAt, byPid };
  }
}
