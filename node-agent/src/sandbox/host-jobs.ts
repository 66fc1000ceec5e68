/**
 * Asynchronous host work for isolates (Web Crypto, compression): Node runs
 * it on the libuv threadpool, where `isolate.cpuTime` and this thread's CPU
 * clock see none of it. So each job holds one of a few slots while it runs
 * (no more than the threadpool has threads, so a job never waits for a
 * thread while its clock runs), and its wall time in the slot is charged to
 * the call as host CPU: for work that keeps a thread busy from start to end
 * that is its CPU time, or more when the machine's cores are all busy (an
 * upper bound, never less). An isolate runs one job at a time, the rest
 * queue (bounded), so one function cannot take every slot.
 */
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";

/** libuv's threadpool size (UV_THREADPOOL_SIZE, default 4). */
const THREADPOOL = Number(process.env["UV_THREADPOOL_SIZE"]) || 4;
export const JOB_SLOTS = Math.max(1, Math.min(THREADPOOL, availableParallelism()));
/** Jobs one isolate may have waiting. */
export const MAX_QUEUED_JOBS = 1_000;

export class JobGate {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(slots: number) {
    this.free = slots;
  }

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

/** What a job queue charges and reports to: the isolate's instance, seen through these fields only. */
export interface JobOwner {
  /** Host CPU of its jobs charged to the isolate (µs, cumulative). */
  jobCpuUs: number;
  /** performance.now() when the running job took its slot; 0 when none runs. Meters add the time since. */
  jobStartedAt: number;
}

/** One isolate's jobs, run one at a time, each in a slot of the process's gate. */
export class JobQueue {
  private readonly queue: (() => Promise<void>)[] = [];
  private running = false;
  private closed = false;
  private readonly owner: JobOwner;
  private readonly gate: JobGate;

  constructor(owner: JobOwner, gate: JobGate) {
    this.owner = owner;
    this.gate = gate;
  }

  get length(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Queues `work`; `done` gets its outcome once it ran (never when the queue was closed first). False when the queue is full. */
  push<T>(work: () => Promise<T>, done: (outcome: { ok: true; value: T } | { ok: false; error: unknown }) => void): boolean {
    if (this.closed || this.queue.length >= MAX_QUEUED_JOBS) return false;
    this.queue.push(async () => {
      let outcome: { ok: true; value: T } | { ok: false; error: unknown };
      try {
        outcome = { ok: true, value: await work() };
      } catch (error) {
        outcome = { ok: false, error };
      }
      if (!this.closed) done(outcome);
    });
    // started after the host callback that queued it returned: its time is measured here, not also by that callback
    queueMicrotask(() => void this.pump());
    return true;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let job = this.queue.shift(); job && !this.closed; job = this.queue.shift()) {
        await this.gate.acquire();
        const started = performance.now();
        this.owner.jobStartedAt = started;
        try {
          await job();
        } finally {
          this.owner.jobStartedAt = 0;
          this.owner.jobCpuUs += (performance.now() - started) * 1000;
          this.gate.release();
        }
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * Drops the jobs still waiting (their call ended: nobody waits for them). A
   * running one goes on (Node cannot stop it); its time is charged to the
   * isolate, so to its next call: work a function started and left running is
   * never free.
   */
  dropWaiting(): void {
    this.queue.length = 0;
  }

  /** Drops what waits, for good; a running job ends on its own and reports nothing. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
  }
}
