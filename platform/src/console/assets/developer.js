// A developer's pages: their apps and functions with status, version, when
// deployed and where they run; one function's charts, usage by day, recent
// errors, live logs (filtered by request id) and versions with rollback.
import { api, ApiError, enc, every, followLogs } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { badge, byDoor, bytes, h, replace, table, time } from "./dom.js";

const REFRESH_MS = 5000;

/** ready / pending / no device / error, from the function's view and its last minutes of calls. */
export function statusOf(fn, points) {
  const recent = points.slice(-5);
  const calls = recent.reduce((n, p) => n + p.calls, 0);
  const errors = recent.reduce((n, p) => n + p.errors, 0);
  if (errors > 0 && errors * 2 >= calls) return "error";
  if (fn.status === "ready") return "ready";
  return fn.devices.length === 0 ? "no device" : "pending";
}

function where(fn) {
  if (fn.devices.length === 0) return "—";
  return fn.devices.map((d) => `${d} (${fn.regions?.[d] ?? "?"})`).join(", ");
}



export async function developerHome({ show, signal }) {
  const body = h("div", {});
  const render = async () => {
    const { functions } = await api("GET", "/functions");
    const stats = await Promise.all(functions.map((f) => api("GET", `/apps/${enc(f.app)}/functions/${enc(f.name)}/stats?range=hour`).catch(() => null)));
    if (signal.aborted) return;
    const apps = new Map();
    functions.forEach((f, i) => {
      if (!apps.has(f.app)) apps.set(f.app, []);
      apps.get(f.app).push([f, stats[i]]);
    });
    replace(body,
      functions.length === 0
        ? h("p", { class: "card" }, "No functions yet. Deploy one with ", h("code", {}, "hearth deploy <file> --app <app> --name <fn>"), ".")
        : [...apps].map(([app, list]) => h("section", { class: "card", "data-app": app },
          h("h2", {}, `App ${app}`),
          table(null, ["Function", "Status", "Version", "Deployed", "Devices (region)", "Calls 1 h", "Errors 1 h"],
            list.map(([f, s]) => [
              h("a", { href: `#/fn/${f.app}/${f.name}` }, f.name),
              badge(statusOf(f, s?.points ?? [])),
              h("span", { class: "mono", title: f.version }, f.version.slice(0, 12)),
              time(Date.parse(f.updatedAt)),
              where(f),
              String(s?.totals.calls ?? "—"),
              String(s?.totals.errors ?? "—"),
            ])))));
  };
  await render();
  show("Functions", h("h1", {}, "Your functions"), body);
  every(signal, REFRESH_MS, render);
}

export async function functionPage({ show, app, fn, signal }) {
  const base = `/apps/${enc(app)}/functions/${enc(fn)}`;
  let range = "hour";
  const summary = h("section", { class: "card", "aria-labelledby": "fn-title" });
  const charts = h("div", { class: "charts" });
  const totals = h("p", { class: "totals" });
  const days = h("div", {});
  const errors = h("div", {});
  const versions = h("div", {});
  const notice = h("p", { class: "notice", role: "status", "aria-live": "polite" });
  const rangeButtons = ["hour", "day"].map((r) =>
    h("button", { type: "button", "aria-pressed": String(r === range), "data-range": r, on: { click: () => { range = r; for (const b of rangeButtons) b.setAttribute("aria-pressed", String(b.dataset.range === range)); void refresh(); } } },
      r === "hour" ? "Last hour" : "Last day"));

  const renderSummary = (view, stats) => replace(summary,
    h("h1", { id: "fn-title" }, `${app}/${fn}`),
    h("dl", { class: "facts" },
      h("dt", {}, "status"), h("dd", { "data-status": "" }, badge(statusOf(view, stats.points))),
      h("dt", {}, "version"), h("dd", { class: "mono", "data-version": view.version }, view.version.slice(0, 12)),
      h("dt", {}, "deployed"), h("dd", {}, time(Date.parse(view.updatedAt))),
      h("dt", {}, "devices"), h("dd", {}, where(view)),
      h("dt", {}, "url"), h("dd", { class: "mono" }, h("a", { href: view.url, rel: "noreferrer noopener", target: "_blank" }, view.url)),
      h("dt", {}, "limits"), h("dd", {}, `${view.limits.memoryMb} MiB, ${view.limits.cpuMs} ms CPU, ${view.limits.wallMs} ms wall, ${view.replicas} replicas`)));

  const label = (at) => {
    const d = new Date(at);
    return range === "hour" ? d.toTimeString().slice(0, 5) : `${d.toTimeString().slice(0, 5)}`;
  };
  const renderStats = (stats) => {
    const labels = stats.points.map((p) => label(p.at));
    replace(charts,
      barChart({ title: `Calls and errors per ${range === "hour" ? "minute" : "15 minutes"}`, labels, series: [
        { name: "calls", className: "s-calls", values: stats.points.map((p) => p.calls) },
        { name: "errors", className: "s-errors", values: stats.points.map((p) => p.errors) },
      ] }),
      lineChart({ title: "Wall time (ms)", labels, series: [
        { name: "p50", className: "s-p50", values: stats.points.map((p) => p.p50Ms) },
        { name: "p99", className: "s-p99", values: stats.points.map((p) => p.p99Ms) },
      ] }));
    replace(totals, `${stats.totals.calls} calls, ${stats.totals.errors} errors, p50 ${stats.totals.p50Ms ?? "—"} ms, p99 ${stats.totals.p99Ms ?? "—"} ms over the last ${range}`);
    replace(days,
      stats.days.length > 0 ? h("div", { class: "charts" }, barChart({ title: "CPU-seconds by day", labels: stats.days.map((d) => d.day.slice(5)), format: (v) => v.toFixed(v < 1 ? 3 : 1), series: [
        { name: "CPU-s", className: "s-cpu", values: stats.days.map((d) => d.cpuSeconds) },
      ] }), barChart({ title: "Bytes in and out by day", labels: stats.days.map((d) => d.day.slice(5)), format: (v) => bytes(v), series: [
        { name: "out", className: "s-calls", values: stats.days.map((d) => d.responseBytes) },
        { name: "in", className: "s-cpu", values: stats.days.map((d) => d.requestBytes) },
      ] })) : null,
      table("Usage by day (UTC)", ["Day", "Calls", "Errors", "CPU-seconds", "Bytes in", "Bytes out", "By door"],
        stats.days.map((d) => [d.day, String(d.calls), String(d.errors), d.cpuSeconds.toFixed(3), bytes(d.requestBytes), bytes(d.responseBytes), byDoor(d.doors)])));
    replace(errors, table("Recent errors (newest first)", ["Time", "Request id", "Code", "Status", "Device"],
      stats.recentErrors.map((e) => [
        time(e.at),
        h("button", { type: "button", class: "link mono", title: "Show this call's log lines", on: { click: () => { filter.value = e.requestId; void startFollow(); } } }, e.requestId),
        h("span", { class: "mono" }, e.code), String(e.status), e.deviceId ?? "—",
      ])));
  };

  const renderVersions = (list, current) => replace(versions, table("Versions (newest first)", ["Version", "Created", "Size", ""],
    list.map((v) => [
      h("span", { class: "mono", title: v.version }, v.version.slice(0, 12)),
      time(Date.parse(v.createdAt)),
      bytes(v.size),
      v.version === current
        ? h("strong", { "data-current": "" }, "running")
        : h("button", { type: "button", "data-rollback": v.version, on: { click: () => void rollback(v.version) } }, "Roll back to this"),
    ])));

  let current = "";
  const refresh = async () => {
    const [view, stats] = await Promise.all([api("GET", base), api("GET", `${base}/stats?range=${range}`)]);
    if (signal.aborted) return;
    renderSummary(view, stats);
    renderStats(stats);
    if (view.version !== current) {
      current = view.version;
      renderVersions((await api("GET", `${base}/versions`)).versions, current);
    }
  };
  const rollback = async (version) => {
    try {
      await api("POST", `${base}/rollback`, { version });
      replace(notice, `Rolled back: ${app}/${fn} now runs ${version.slice(0, 12)}; devices move to it within seconds.`);
      current = "";
      await refresh();
    } catch (error) {
      replace(notice, error instanceof ApiError ? `Rollback failed: ${error.code}: ${error.message}` : String(error));
    }
  };

  // live logs: the API's follow stream, optionally of one request id
  const lines = h("ol", { class: "log", "aria-live": "polite", "aria-label": "log lines" });
  const state = h("span", { class: "follow-state", "data-follow-state": "stopped" }, "stopped");
  const filter = h("input", { id: "request-id", type: "search", placeholder: "request id", maxlength: "255", autocomplete: "off", spellcheck: "false" });
  let follow;
  const setState = (s) => {
    state.textContent = s;
    state.dataset.followState = s;
  };
  const stopFollow = () => {
    follow?.abort();
    follow = undefined;
    setState("stopped");
    toggle.textContent = "Follow";
  };
  const startFollow = async () => {
    follow?.abort();
    const mine = (follow = new AbortController());
    signal.addEventListener("abort", () => mine.abort(), { once: true });
    lines.replaceChildren();
    toggle.textContent = "Stop";
    setState("connecting");
    try {
      await followLogs(app, fn, {
        requestId: filter.value.trim() || undefined,
        signal: mine.signal,
        onState: setState,
        onLine: (line) => {
          lines.append(h("li", { class: `lvl-${line.level}`, "data-seq": line.seq },
            h("time", { datetime: new Date(line.at).toISOString() }, new Date(line.at).toISOString().slice(11, 23)), " ",
            h("span", { class: "lvl" }, line.level), " ",
            h("span", { class: "rid mono", title: line.traceId ? `trace ${line.traceId}` : undefined }, line.requestId ?? "-"), " ",
            h("span", { class: "msg" }, line.message)));
          while (lines.childElementCount > 500) lines.firstElementChild?.remove();
          lines.lastElementChild?.scrollIntoView({ block: "nearest" });
        },
      });
    } catch (error) {
      if (follow === mine) setState(error instanceof ApiError ? `ended: ${error.code}` : "ended");
    }
  };
  const toggle = h("button", { type: "button", "data-follow": "", on: { click: () => (follow ? stopFollow() : void startFollow()) } }, "Follow");
  const logs = h("section", { class: "card", "aria-labelledby": "logs-title" },
    h("h2", { id: "logs-title" }, "Logs"),
    h("form", { class: "row", on: { submit: (e) => { e.preventDefault(); void startFollow(); } } },
      h("label", { for: "request-id" }, "Request id"), filter, h("button", { type: "submit" }, "Filter"), toggle, " ", state),
    lines);

  await refresh();
  show(`${app}/${fn}`,
    h("p", {}, h("a", { href: "#/" }, "← All functions")),
    summary,
    h("section", { class: "card", "aria-labelledby": "activity-title" }, h("h2", { id: "activity-title" }, "Activity"), h("div", { class: "row", role: "group", "aria-label": "range" }, rangeButtons), charts, totals),
    logs,
    h("section", { class: "card", "aria-labelledby": "errors-title" }, h("h2", { id: "errors-title" }, "Errors"), errors),
    h("section", { class: "card", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Usage"), days),
    h("section", { class: "card", "aria-labelledby": "versions-title" }, h("h2", { id: "versions-title" }, "Versions"), notice, versions));
  void startFollow();
  every(signal, REFRESH_MS, refresh);
}
