/** The platform's one logger: structured JSON lines (pino), request ids on every call line. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(name: string, level = "info"): Logger {
  return pino({ name, level, base: { service: name } });
}

/** A logger that writes nothing: for tests that don't look at logs. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
