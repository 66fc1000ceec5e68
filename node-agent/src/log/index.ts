/** The agent's one logger: structured JSON lines (pino) with request ids on call lines. */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(name: string, level = "info"): Logger {
  return pino({ name, level, base: { service: name } });
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
