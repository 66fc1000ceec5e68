import { spawn, type ChildProcess } from "node:child_process";


export interface SpawnedServer extends AsyncDisposable {
  readonly process: ChildProcess;
  /** Everything the server printed so far (capped), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface SpawnServerOptions {
  command: string;
  args: string[];
  /** The server is ready once its output matches this. */
  readyWhen: RegExp;
  name: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Sees every chunk the server prints (e.g. to keep a log file). */
  onOutput?: (chunk: Buffer) => void;
}

/**
 * Starts a server process and waits until it says it is ready, racing that
 * against the process exiting early and against a timeout, so nothing hangs.
 */
export async function spawnServer(options: SpawnServerOptions): Promise<SpawnedServer> {
  const child = spawn(options.command, options.args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: options.env ?? process.env,
  });
  let log = "";
  const append = (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-20_000);
    options.onOutput?.(chunk);
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);

  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };

  // a guard against a hang, not a measure of start-up: a loaded 2-core machine starting several agents at once (each
  // loading its sources and isolated-vm, forking sandbox processes) took over 15 s for one of them. Kept well under
  // the tests' 60 s setup hooks, so a server that hangs fails with its name and its log, not a bare hook timeout
  const timeoutMs = options.timeoutMs ?? 30_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (options.readyWhen.test(log)) finish();
      };
      const timer = setTimeout(
        () => fail(new Error(`${options.name} was not ready within ${timeoutMs} ms:\n${log}`)),
        timeoutMs,
      );
      const onExit = (code: number | null, signal: string | null) =>
        fail(new Error(`${options.name} exited early (code ${code}, signal ${signal}):\n${log}`));
      const onError = (error: Error) => fail(new Error(`${options.name} could not start: ${error.message}`));
      function cleanup() {
        clearTimeout(timer);
        child.stdout!.off("data", check);
        child.stderr!.off("data", check);
        child.off("exit", onExit);
        child.off("error", onError);
      }
      function finish() {
        cleanup();
        resolve();
      }
      function fail(error: Error) {
        cleanup();
        reject(error);
      }
      child.stdout!.on("data", check);
      child.stderr!.on("data", check);
      child.once("exit", onExit);
      child.once("error", onError);
      check();
    });
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    process: child,
    output: () => log,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

