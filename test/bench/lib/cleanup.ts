/**
 * Everything a benchmark starts is registered here and stopped in reverse
 * order: at the end of the benchmark, on error, and on Ctrl-C.
 */
export class Cleanup {
  private readonly stack: { name: string; stop: () => unknown }[] = [];

  /** Registers `stop` and returns `value`, so starting and registering read as one line. */
  add<T>(name: string, value: T, stop: (value: T) => unknown): T {
    this.stack.push({ name, stop: () => stop(value) });
    return value;
  }

  /** Stops everything registered, newest first; errors are reported, not thrown. */
  async run(): Promise<void> {
    while (this.stack.length > 0) {
      const { name, stop } = this.stack.pop()!;
      try {
        await withTimeout(Promise.resolve(stop()), 10_000, `stopping ${name}`);
      } catch (error) {
        process.stderr.write(`bench: could not stop ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
      }
    }
  }
}

/** Rejects when `promise` takes longer than `ms`: every wait in the bench is bounded. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
