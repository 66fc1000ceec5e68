/**
 * Helper processes of the bench (baseline servers, load loops, simulated
 * devices): each is a .ts file in ../helpers run by this Node, talking to the
 * bench over the IPC pipe with a tiny request/answer protocol.
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withTimeout, type Cleanup } from "./cleanup.ts";

export interface Helper {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Sends a request and waits (bounded) for the helper's answer. */
  call<T>(method: string, params?: unknown, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

type Answer = { id: number; result?: unknown; error?: string };

export async function startHelper(cleanup: Cleanup, file: string, options: { execArgv?: string[]; args?: string[] } = {}): Promise<Helper> {
  const path = fileURLToPath(new URL(`../helpers/${file}`, import.meta.url));
  const child = fork(path, options.args ?? [], {
    execArgv: ["--disable-warning=ExperimentalWarning", ...(options.execArgv ?? [])],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let next = 0;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`helper ${file} exited (code ${code}, signal ${signal})`));
    pending.clear();
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.once("exit", () => reject(new Error(`helper ${file} exited before it was ready`)));
    child.on("message", (m: unknown) => {
      const message = m as Answer & { type?: string };
      if (message.type === "ready") return resolve();
      const p = pending.get(message.id);
      if (!p) return;
      pending.delete(message.id);
      if (message.error !== undefined) p.reject(new Error(`${file}: ${message.error}`));
      else p.resolve(message.result);
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
    await exited;
    clearTimeout(timer);
  };
  cleanup.add(`helper ${file}`, null, stop);
  await withTimeout(ready, 15_000, `starting helper ${file}`);
  return {
    pid: child.pid!,
    child,
    call<T>(method: string, params?: unknown, timeoutMs = 120_000): Promise<T> {
      const id = ++next;
      const answer = new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, method, params });
      });
      return withTimeout(answer, timeoutMs, `${file} ${method}`);
    },
    stop,
  };
}

/**
 * The helper side: answers the bench's requests with `handlers` and says
 * ready. The helper exits when the bench goes away.
 */
export function serveHelper(handlers: Record<string, (params: never) => unknown>): void {
  process.on("message", (m: unknown) => {
    const { id, method, params } = m as { id: number; method: string; params: never };
    const handler = handlers[method];
    if (!handler) {
      process.send?.({ id, error: `no method ${method}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(params))
      .then(
        (result) => process.send?.({ id, result }),
        (error: unknown) => process.send?.({ id, error: error instanceof Error ? error.message : String(error) }),
      );
  });
  process.on("disconnect", () => process.exit(0));
  process.send?.({ type: "ready" });
}
