/**
 * The daemon's local control socket (`<dataDir>/agent.sock`, owner-only) and
 * pid file: `hearth-agent status`, `pause`, `resume` and `drain` talk to the
 * running agent through it. One JSON line in, one JSON line out, both
 * validated with zod.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { HearthError } from "@hearth/protocol";
import { z } from "zod";
import type { AgentStatus } from "../agent/index.ts";

export const ControlRequest = z.strictObject({ cmd: z.enum(["status", "pause", "resume", "drain"]) });
export type ControlRequest = z.infer<typeof ControlRequest>;

export const ControlResponse = z.union([
  z.strictObject({ ok: z.literal(true), status: z.custom<AgentStatus>((v) => typeof v === "object" && v !== null).optional() }),
  z.strictObject({ ok: z.literal(false), error: z.string() }),
]);
export type ControlResponse = z.infer<typeof ControlResponse>;

/** One socket and pid file per device id, so several agents (e.g. a local test Hearth) can share a data dir. */
export function socketPath(dataDir: string, deviceId: string): string {
  return join(dataDir, `agent-${deviceId}.sock`);
}

export function pidPath(dataDir: string, deviceId: string): string {
  return join(dataDir, `agent-${deviceId}.pid`);
}

/**
 * The device whose running agent a command talks to: the one named, else the
 * joined identity's, else the only agent with a socket in the data dir.
 */
export function pickDevice(dataDir: string, named: string | undefined, joined: string | undefined): string {
  if (named) return named;
  if (joined) return joined;
  let running: string[] = [];
  try {
    running = readdirSync(dataDir).flatMap((f) => /^agent-(.+)\.sock$/.exec(f)?.[1] ?? []);
  } catch {
    // no data dir: no agent
  }
  if (running.length === 1) return running[0]!;
  if (running.length === 0) throw new HearthError("ERR_BAD_REQUEST", `no agent is running with data dir ${dataDir} (start one with hearth-agent start, or pass --data-dir)`);
  throw new HearthError("ERR_BAD_REQUEST", `several agents run with data dir ${dataDir} (${running.join(", ")}); pick one with --device-id`);
}

export interface ControlHandlers {
  status(): AgentStatus;
  pause(): void;
  resume(): void;
  drain(): void;
}

/** Listens on the data dir's socket; refuses to start when another agent already runs there. */
export async function startControlServer(dataDir: string, deviceId: string, handlers: ControlHandlers): Promise<Server & AsyncDisposable> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = socketPath(dataDir, deviceId);
  if (existsSync(path)) {
    const alive = await request(dataDir, deviceId, { cmd: "status" }, 1_000).then(
      () => true,
      () => false,
    );
    if (alive) throw new HearthError("ERR_BAD_REQUEST", `an agent for device ${deviceId} already runs with data dir ${dataDir}; stop it (hearth-agent drain) first`);
    rmSync(path, { force: true });
  }
  const server = createServer((socket) => {
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("error", () => undefined);
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      if (buffer.length > 4_096) return void socket.destroy();
      const newline = buffer.indexOf("\n");
      if (newline < 0) return;
      let reply: ControlResponse;
      let after: (() => void) | undefined;
      try {
        const parsed = ControlRequest.safeParse(JSON.parse(buffer.slice(0, newline)));
        if (!parsed.success) reply = { ok: false, error: "unknown command" };
        else if (parsed.data.cmd === "status") reply = { ok: true, status: handlers.status() };
        else {
          reply = { ok: true };
          after = handlers[parsed.data.cmd];
        }
      } catch {
        reply = { ok: false, error: "not JSON" };
      }
      socket.end(JSON.stringify(reply) + "\n");
      after?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  writeFileSync(pidPath(dataDir, deviceId), `${process.pid}\n`, { mode: 0o600 });
  const close = async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(pidPath(dataDir, deviceId), { force: true });
  };
  return Object.assign(server, { [Symbol.asyncDispose]: close });
}

/** Sends one command to the agent running with `dataDir`. */
export function request(dataDir: string, deviceId: string, body: ControlRequest, timeoutMs = 5_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath(dataDir, deviceId));
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HearthError("ERR_PLATFORM_UNREACHABLE", `the agent did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(JSON.stringify(body) + "\n"));
    socket.on("data", (chunk: string) => (data += chunk));
    socket.on("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = error.code === "ENOENT" || error.code === "ECONNREFUSED" ? ` (is it running? start it with hearth-agent start)` : "";
      reject(new HearthError("ERR_PLATFORM_UNREACHABLE", `no agent for device ${deviceId} is running with data dir ${dataDir}${hint}`));
    });
    socket.on("end", () => {
      clearTimeout(timer);
      try {
        const parsed = ControlResponse.safeParse(JSON.parse(data));
        if (!parsed.success) throw new Error("invalid");
        resolve(parsed.data);
      } catch {
        reject(new HearthError("ERR_BAD_MESSAGE", "the agent sent an answer that is not valid"));
      }
    });
  });
}
