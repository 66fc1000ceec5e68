/**
 * What the fabric's authentication costs, against the same thing without it
 * in the same run: two nats-servers side by side, one trusting only a
 * FabricAuthority (decentralized JWT, no anonymous client), one with no
 * authentication at all.
 *
 * - Connect: a device-credential connect (user JWT + nonce signed with the
 *   device's seed) to the authenticated server vs an anonymous connect to
 *   the other, alternating, one at a time.
 * - Per call: request/reply echo between a platform-credential requester and
 *   a device-credential responder on the device's own invocation subject
 *   (its JWT allows that subject and one reply per request) vs the same echo
 *   between anonymous clients; rounds alternate so drift hits both alike.
 */
import { startNatsServer } from "@hearth/devkit";
import { deviceCreds, FabricAuthority, natsAuth } from "@hearth/platform";
import { Subjects } from "@hearth/protocol";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import type { BenchContext, Benchmark } from "./lib/bench.ts";
import { credsText } from "./lib/fabric.ts";
import { startHelper, type Helper } from "./lib/helper.ts";
import type { LoadResult } from "./lib/load.ts";
import { CpuMeter } from "./lib/proc.ts";
import type { Row, Section } from "./lib/report.ts";
import { fmt, percentile } from "./lib/stats.ts";
import { CONCURRENCY, HELLO_JSON } from "./warm-call.ts";

interface Echo {
  name: string;
  serverPid: number;
  requester: Helper;
  responder: Helper;
  calls: number;
  wallMs: number;
  failures: number;
  p50s: number[];
  p99s: number[];
  serverCpuMs: number;
  pathCpuMs: number;
}

interface ConnectTimes {
  wallMs: number[];
  clientCpuUs: number[];
}

export const auth: Benchmark = {
  name: "auth",
  async run(ctx: BenchContext): Promise<Section[]> {
    const connects = ctx.quick ? 100 : 300;
    const rounds = ctx.quick ? 2 : 3;
    const seconds = ctx.quick ? 3 : 5;
    const warmupSeconds = 1;
    const authority = FabricAuthority.generate();
    const subjects = new Subjects("bench");
    const deviceId = "bench-auth";

    ctx.log("auth: an authenticated nats-server (decentralized JWT) beside one with no authentication");
    const secure = ctx.cleanup.add("nats-server (authenticated)", await startNatsServer({ auth: natsAuth(authority) }), (n) => n.stop());
    const insecure = ctx.cleanup.add("nats-server (no auth)", await startNatsServer({ insecureNoAuth: true }), (n) => n.stop());
    const device = await deviceCreds(authority, deviceId, subjects.prefix);

    // the cost of issuing a credential (at join and at each renewal), on the platform's side
    const signs = ctx.quick ? 10 : 30;
    const signCpu = process.cpuUsage();
    for (let i = 0; i < signs; i++) await deviceCreds(authority, `${deviceId}-${i}`, subjects.prefix);
    const signCpuMs = cpuUs(process.cpuUsage(signCpu)) / 1000 / signs;

    // (a) connect, one at a time, alternating
    ctx.log(`auth: ${connects} connects each, device credential vs anonymous`);
    const anonymous: ConnectTimes = { wallMs: [], clientCpuUs: [] };
    const credentialed: ConnectTimes = { wallMs: [], clientCpuUs: [] };
    const secureConnectCpu = new CpuMeter(() => [secure.server.process.pid!]);
    const insecureConnectCpu = new CpuMeter(() => [insecure.server.process.pid!]);
    secureConnectCpu.start();
    insecureConnectCpu.start();
    for (let i = 0; i < connects; i++) {
      await timeConnect(anonymous, () => connect({ servers: insecure.url, name: "bench-auth-anonymous", reconnect: false }));
      await timeConnect(credentialed, () =>
        connect({
          servers: secure.url,
          name: "bench-auth-device",
          reconnect: false,
          authenticator: credsAuthenticator(device),
          inboxPrefix: subjects.inbox(deviceId),
        }),
      );
    }
    const secureServerPerConnectMs = secureConnectCpu.stop().totalMs / connects;
    const insecureServerPerConnectMs = insecureConnectCpu.stop().totalMs / connects;

    // (b) per call: the same echo on both servers, rounds alternating
    ctx.log(`auth: request/reply echo, ${CONCURRENCY} in flight, ${rounds} rounds of ${seconds} s on each server`);
    const subject = subjects.invoke(deviceId);
    const echo = async (name: string, url: string, serverPid: number, requesterOptions: object, responderOptions: object): Promise<Echo> => {
      const responder = await startHelper(ctx.cleanup, "nats-echo.ts");
      const requester = await startHelper(ctx.cleanup, "nats-echo.ts");
      await responder.call("connect", { url, ...responderOptions });
      await requester.call("connect", { url, ...requesterOptions });
      await responder.call("respond", { subject });
      return { name, serverPid, requester, responder, calls: 0, wallMs: 0, failures: 0, p50s: [], p99s: [], serverCpuMs: 0, pathCpuMs: 0 };
    };
    const open = await echo("no auth", insecure.url, insecure.server.process.pid!, {}, {});
    const authed = await echo(
      "authenticated",
      secure.url,
      secure.server.process.pid!,
      { creds: credsText(await authority.platformCreds("bench-auth-platform")) },
      { creds: credsText(device), inboxPrefix: subjects.inbox(deviceId) },
    );
    const load = { subject, payload: HELLO_JSON, concurrency: CONCURRENCY, maxCalls: 5_000_000 };
    for (const e of [open, authed]) await e.requester.call("run", { ...load, maxMs: warmupSeconds * 1000 });
    for (let round = 0; round < rounds; round++) {
      // alternate which goes first, so neither always runs right after the other's load
      for (const e of round % 2 === 0 ? [open, authed] : [authed, open]) {
        const server = new CpuMeter(() => [e.serverPid]);
        const path = new CpuMeter(() => [e.serverPid, e.requester.pid, e.responder.pid]);
        server.start();
        path.start();
        const r = await e.requester.call<LoadResult>("run", { ...load, maxMs: seconds * 1000 });
        e.serverCpuMs += server.stop().totalMs;
        e.pathCpuMs += path.stop().totalMs;
        e.calls += r.calls;
        e.wallMs += r.wallMs;
        e.failures += r.failures;
        e.p50s.push(r.p50);
        e.p99s.push(r.p99);
      }
    }
    for (const e of [open, authed]) {
      if (e.failures > 0) ctx.log(`auth: warning: ${e.failures} failed echo calls (${e.name})`);
      await e.requester.stop();
      await e.responder.stop();
    }

    const base = (value: number) => ({ name: "no authentication", value });
    const rps = (e: Echo) => (e.calls / e.wallMs) * 1000;
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const rows: Row[] = [
      { bench: "auth", metric: "connect, p50", value: percentile(credentialed.wallMs, 50), unit: "ms", baseline: base(percentile(anonymous.wallMs, 50)), better: "lower" },
      { bench: "auth", metric: "connect, p99", value: percentile(credentialed.wallMs, 99), unit: "ms", baseline: base(percentile(anonymous.wallMs, 99)), better: "lower" },
      { bench: "auth", metric: "connect: client CPU (nats.js, signs the server's nonce), p50", value: percentile(credentialed.clientCpuUs, 50), unit: "µs", baseline: base(percentile(anonymous.clientCpuUs, 50)), better: "lower" },
      { bench: "auth", metric: "connect: nats-server CPU per connect (and close)", value: secureServerPerConnectMs * 1000, unit: "µs", baseline: base(insecureServerPerConnectMs * 1000), better: "lower" },
      { bench: "auth", metric: `echo requests/s, ${CONCURRENCY} in flight`, value: rps(authed), unit: "req/s", baseline: base(rps(open)), better: "higher" },
      { bench: "auth", metric: "echo p50 latency", value: mean(authed.p50s), unit: "ms", baseline: base(mean(open.p50s)), better: "lower" },
      { bench: "auth", metric: "echo p99 latency", value: mean(authed.p99s), unit: "ms", baseline: base(mean(open.p99s)), better: "lower" },
      { bench: "auth", metric: "echo: nats-server CPU per call", value: (authed.serverCpuMs / authed.calls) * 1000, unit: "µs", baseline: base((open.serverCpuMs / open.calls) * 1000), better: "lower" },
      { bench: "auth", metric: "echo: CPU per call, nats-server + requester + responder", value: (authed.pathCpuMs / authed.calls) * 1000, unit: "µs", baseline: base((open.pathCpuMs / open.calls) * 1000), better: "lower" },
      { bench: "auth", metric: "device credential issued (user JWT signed, join or renewal), platform CPU", value: signCpuMs, unit: "ms", baseline: null, better: "lower" },
    ];
    return [
      {
        title: "Authentication (fabric credentials vs no authentication, same run)",
        rows,
        notes: [
          `Two nats-servers side by side: one with the fabric's decentralized JWT auth (operator, account, signing key; full resolver; no anonymous client), one with no authentication (insecureNoAuth). Hearth column = authenticated, baseline = no authentication.`,
          `Connect: ${fmt(connects)} connects to each, alternating, one at a time, each closed before the next; device credential = the device's user JWT (its permissions: its own subjects only, one reply per request) and the nonce signed with its seed by nats.js (tweetnacl), with its own inbox prefix; timed from connect() to the connection being up (CONNECT, PING/PONG answered). nats-server CPU from /proc (10 ms ticks) over all ${fmt(connects)} connects ÷ ${fmt(connects)}.`,
          `Per call: request/reply echo of the warm call's ${HELLO_JSON.length} bytes on the device's invocation subject (${subject}), ${CONCURRENCY} in flight, between two helper processes: authenticated = platform credential requesting, device credential answering (allow_responses, max 1); no auth = anonymous both. ${rounds} rounds of ${seconds} s on each, alternating, after ${warmupSeconds} s of warm-up each; ${fmt(authed.calls)} authenticated and ${fmt(open.calls)} unauthenticated round trips; latencies are the mean of the rounds' p50 and p99.`,
          `Device credential issued: ${signs} user JWTs signed by the platform's FabricAuthority (@nats-io/jwt, tweetnacl), CPU of this process ÷ ${signs}; paid at join and at each renewal (at half the credential's life), never per call.`,
        ],
      },
    ];
  },
};

function cpuUs(usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system;
}

async function timeConnect(into: ConnectTimes, open: () => Promise<{ close(): Promise<void> }>): Promise<void> {
  const cpu = process.cpuUsage();
  const t = performance.now();
  const nc = await open();
  into.wallMs.push(performance.now() - t);
  into.clientCpuUs.push(cpuUs(process.cpuUsage(cpu)));
  await nc.close();
}
