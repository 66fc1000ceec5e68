// The operator's page: devices by region and state, functions no live
// device serves, and the ledger: metering, consumer lag, the last
// reconciliation, and a button to reconcile now.
import { api, ApiError, every } from "./api.js";
import { ago, h, replace, stateOf, table, time } from "./dom.js";

const STATES = ["serving", "idle", "paused", "draining", "offline", "revoked"];

export async function operatorHome({ show, signal }) {
  const body = h("div", {});
  const result = h("div", { role: "status", "aria-live": "polite" });
  const reconcile = async (button) => {
    button.disabled = true;
    replace(result, "Reconciling the ledger against the usage stream…");
    try {
      const r = await api("POST", "/ledger/reconcile");
      replace(result, h("p", { "data-reconcile": r.differences.length === 0 && r.missing === 0 ? "exact" : "differs" },
        r.differences.length === 0 && r.missing === 0
          ? `Exact: ${r.records} records, ${r.pending} still in flight.`
          : `${r.differences.length} accounts differ, ${r.missing} records missing (of ${r.records}); repair with hearth-platform ledger reconcile --repair.`));
      await render();
    } catch (error) {
      replace(result, error instanceof ApiError ? `${error.code}: ${error.message}` : String(error));
    } finally {
      button.disabled = false;
    }
  };
  const render = async () => {
    const data = await api("GET", "/console/operator");
    if (signal.aborted) return;
    const regions = new Map();
    for (const d of data.devices) {
      if (!regions.has(d.region)) regions.set(d.region, Object.fromEntries(STATES.map((s) => [s, 0])));
      regions.get(d.region)[d.state]++;
    }
    const l = data.ledger;
    const last = l.lastReconcile;
    replace(body,
      h("section", { class: "card" }, h("h2", {}, "Devices by region"),
        table(null, ["Region", ...STATES], [...regions].sort().map(([region, n]) => [region, ...STATES.map((s) => String(n[s]))]))),
      h("section", { class: "card" }, h("h2", {}, "Devices"),
        table(null, ["Device", "Owner", "Region", "State", "Cores (free)", "Memory", "Calls in flight", "Functions", "Last heartbeat"],
          data.devices.map((d) => [h("span", { class: "mono" }, d.deviceId), d.ownerId, d.region, stateOf(d),
            d.cores === null ? "—" : `${d.cores} (${d.freeCores ?? "—"})`, d.memoryMb === null ? "—" : `${d.memoryMb} MiB`,
            String(d.activeCalls), String(d.functions), ago(d.lastSeenMs)]))),
      h("section", { class: "card" }, h("h2", {}, `Functions without a device (${data.withoutDevice.length} of ${data.functions})`),
        table(null, ["Function", "Replicas", "Updated"], data.withoutDevice.map((f) => [h("span", { class: "mono" }, `${f.app}/${f.fn}`), String(f.replicas), time(Date.parse(f.updatedAt))]))),
      h("section", { class: "card" }, h("h2", {}, "Ledger"),
        h("dl", { class: "facts" },
          h("dt", {}, "metering"), h("dd", {}, l.metering ? "on (JetStream)" : "OFF: calls are not billed or credited"),
          h("dt", {}, "consumer lag"), h("dd", {}, l.lag === null ? "—" : `${l.lag} records`),
          h("dt", {}, "usage backlog"), h("dd", {}, `${l.usageBacklog} records not yet stored`),
          l.usage ? [h("dt", {}, "usage records"), h("dd", {}, `${l.usage.published} stored (${l.usage.commits} group commits on the call path), ${l.usage.deferred} deferred, ${l.usage.dropped} dropped`)] : null,
          h("dt", {}, "last reconcile"), h("dd", {}, last
            ? [time(Date.parse(last.at)), ` — ${last.differences === 0 && last.missing === 0 ? "exact" : `${last.differences} differences, ${last.missing} missing`}, ${last.records} records${last.repaired ? " (after repair)" : ""}`]
            : "never")),
        l.metering ? h("button", { type: "button", on: { click: (e) => void reconcile(e.currentTarget) } }, "Reconcile now") : null,
        result));
  };
  await render();
  show("Operator", h("h1", {}, "Fleet"), body);
  every(signal, 5000, render);
}
