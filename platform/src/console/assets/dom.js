// A tiny element builder that can only make text: children that are strings
// become text nodes (escaped by the browser, never parsed as markup), and
// attributes are set one by one. No markup sink anywhere in the console (the
// page's Trusted Types policy would refuse it anyway).
import { visible } from "./text.js";

/**
 * @param {string} tag
 * @param {Record<string, unknown>} [attrs] attributes; `on` holds event listeners; `text` sets textContent
 * @param {...(Node | string | number | null | undefined | false | (Node | string)[])} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [event, listener] of Object.entries(/** @type {Record<string, EventListener>} */ (value))) el.addEventListener(event, listener);
    } else if (key === "text") el.textContent = visible(String(value));
    else if (key === "href") el.setAttribute("href", safeHref(String(value)));
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {unknown[]} children */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(visible(String(child))));
  }
}

/** Links go to the console's own pages or to http(s) URLs; anything else (javascript:, data:) becomes inert. */
function safeHref(value) {
  if (value.startsWith("#")) return value;
  try {
    const url = new URL(value, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : "#";
  } catch {
    return "#";
  }
}

/** Replaces an element's content. @param {Element} el @param {...unknown} children */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table with a header row; rows of cells (strings or nodes). */
export function table(caption, headers, rows, attrs = {}) {
  return h("div", { class: "table-wrap" },
    h("table", attrs,
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.length === 0
        ? h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "nothing yet"))
        : rows.map((cells) => h("tr", {}, cells.map((x) => h("td", {}, x)))))));
}

export function badge(state) {
  return h("span", { class: `badge badge-${String(state).replace(/[^a-z-]/g, "")}` }, state);
}

const PAUSE_REASONS = { schedule: "outside its schedule", "owner-busy": "the owner is using the machine", battery: "on battery", owner: "paused by its owner" };

/** A device's state, and why when it is paused. */
export function stateOf(device) {
  const why = device.pausedFor?.map((r) => PAUSE_REASONS[r] ?? r).join(", ");
  return h("span", { "data-state": device.state }, badge(device.state), why ? ` ${why}` : null);
}

export function time(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return h("time", { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A function's calls by the door they came in by, those that had any: "gateway 12, device 3" (docs/ledger.md). */
export function byDoor(doors) {
  return Object.entries(doors ?? {}).filter(([, n]) => n > 0).map(([door, n]) => `${door} ${n}`).join(", ") || "—";
}

export function ago(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1500) return "just now";
  if (ms < 90_000) return `${Math.round(ms / 1000)} s ago`;
  return `${Math.round(ms / 60_000)} min ago`;
}
