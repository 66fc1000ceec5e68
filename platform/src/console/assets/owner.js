// A device owner's page (signed in with one of their devices' tokens): their
// devices with state, cores and memory donated and in use, and calls,
// CPU-seconds and credits earned by day.
import { api, every } from "./api.js";
import { barChart } from "./charts.js";
import { ago, h, replace, stateOf, table } from "./dom.js";

export async function ownerHome({ show, signal }) {
  const body = h("div", {});
  let ownerId = "";
  const render = async () => {
    const data = await api("GET", "/console/owner");
    if (signal.aborted) return;
    ownerId = data.ownerId;
    const byDay = new Map();
    for (const c of data.credits) {
      for (const d of c.days) {
        const sum = byDay.get(d.day) ?? { calls: 0, cpuUs: 0, credits: 0 };
        sum.calls += d.calls;
        sum.cpuUs += d.cpuUs;
        sum.credits += d.credits;
        byDay.set(d.day, sum);
      }
    }
    const days = [...byDay.keys()].sort();
    const total = data.credits.reduce((n, c) => n + c.total.credits, 0);
    const claimed = data.credits.reduce((n, c) => n + (c.total.claimed?.calls ?? 0), 0);
    replace(body,
      h("section", { class: "card" }, h("h2", {}, "Your devices"),
        table(null, ["Device", "State", "Region", "Where", "Cores donated (in use)", "Memory", "Calls in flight", "Functions", "Last heartbeat"],
          data.devices.map((d) => [h("span", { class: "mono" }, d.deviceId), stateOf(d), d.region, d.location ?? "—",
            d.cores === null ? "—" : `${d.cores} (${d.freeCores === null ? "—" : (d.cores - d.freeCores).toFixed(1)})`,
            d.memoryMb === null ? "—" : `${d.memoryMb} MiB`, String(d.activeCalls), String(d.functions), ago(d.lastSeenMs)]))),
      h("section", { class: "card" }, h("h2", {}, "Served and earned"),
        data.metering ? null : h("p", { class: "warn" }, "Metering is off on this platform: nothing is credited."),
        h("div", { class: "charts" },
          barChart({ title: "Calls served by day", labels: days.map((d) => d.slice(5)), series: [{ name: "calls", className: "s-calls", values: days.map((d) => byDay.get(d).calls) }] }),
          barChart({ title: "CPU-seconds by day", labels: days.map((d) => d.slice(5)), format: (v) => v.toFixed(v < 1 ? 3 : 1), series: [{ name: "CPU-s", className: "s-cpu", values: days.map((d) => byDay.get(d).cpuUs / 1e6) }] }),
          barChart({ title: "Credits by day", labels: days.map((d) => d.slice(5)), format: (v) => v.toFixed(v < 1 ? 3 : 1), series: [{ name: "credits", className: "s-credits", values: days.map((d) => byDay.get(d).credits) }] })),
        h("p", { class: "totals" }, `${total.toFixed(3)} credits in all (1 credit = 1 CPU-second served)`),
        claimed > 0 ? h("p", { class: "claimed" }, `${claimed} calls served at your doors are claimed, not credited: the platform cannot verify a door's word alone. An app credits them once its developer invites your device: ask them for an invite and run hearth-agent networks add <invite>.`) : null));
  };
  await render();
  show("Your devices", h("h1", {}, `Devices of owner ${ownerId}`), body);
  every(signal, 5000, render);
}
