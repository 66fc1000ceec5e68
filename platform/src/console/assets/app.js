// The console's entry: sign-in, the page for whoever signed in (developer,
// operator or device owner), and the routes inside it (#/, #/fn/<app>/<fn>).
// Each page gets an AbortSignal that ends its timers and streams when the
// person goes elsewhere.
import { api, ApiError, signIn, signOut, token } from "./api.js";
import { h, replace } from "./dom.js";
import { developerHome, functionPage } from "./developer.js";
import { operatorHome } from "./operator.js";
import { ownerHome } from "./owner.js";

const main = /** @type {HTMLElement} */ (document.getElementById("main"));
const who = /** @type {HTMLElement} */ (document.getElementById("who"));
const banner = /** @type {HTMLElement} */ (document.getElementById("banner"));

let page = new AbortController();
let me = null;

function show(title, ...content) {
  document.title = `${title} · Hearth console`;
  replace(main, ...content);
  main.focus({ preventScroll: true });
}

function signInPage(note) {
  replace(who);
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const form = h("form", { class: "card signin", on: { submit: (e) => { e.preventDefault(); void attempt(input.value.trim()); } } },
    h("h1", {}, "Sign in"),
    note ? h("p", { class: "note", role: "alert" }, note) : null,
    h("label", { for: "token" }, "Token"),
    input,
    h("p", { id: "token-help", class: "help" },
      "A developer token (hth_…) from the platform's operator, the operator token, or one of your devices' tokens (hd_…, in the agent's data dir after hearth-agent join). It stays in this tab only."),
    h("button", { type: "submit" }, "Sign in"));
  show("Sign in", form);
  input.focus();
}

function unauthorizedPage(error) {
  replace(who);
  show("401 Unauthorized",
    h("section", { class: "card error-page", "data-page": "401" },
      h("h1", {}, "401 — not signed in"),
      h("p", {}, "The platform did not accept this token."),
      h("dl", {}, h("dt", {}, "code"), h("dd", { class: "mono" }, error.code), h("dt", {}, "message"), h("dd", {}, error.message),
        error.requestId ? [h("dt", {}, "request id"), h("dd", { class: "mono" }, error.requestId)] : null),
      h("p", {}, h("a", { href: "#/signin" }, "Sign in again"))));
}

async function attempt(value) {
  if (!value) return signInPage("Paste a token first.");
  signIn(value);
  me = null;
  if (location.hash !== "#/") location.hash = "#/"; // hashchange routes
  else await route();
}

function header() {
  const label = me.kind === "developer" ? `${me.developer.name} (developer)` : me.kind === "owner" ? `${me.ownerId} (device owner)` : "operator";
  replace(who, h("span", { class: "me" }, label), " ",
    h("button", { type: "button", class: "link", on: { click: () => { signOut(); me = null; location.hash = "#/signin"; } } }, "Sign out"));
}

async function route() {
  page.abort();
  page = new AbortController();
  const signal = page.signal;
  const hash = location.hash || "#/";
  if (hash === "#/signin" || !token()) return signInPage();
  try {
    me ??= await api("GET", "/whoami");
    header();
    const fn = /^#\/fn\/([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(hash);
    if (me.kind === "developer" && fn) return await functionPage({ show, app: fn[1], fn: fn[2], signal });
    if (me.kind === "developer") return await developerHome({ show, signal });
    if (me.kind === "owner") return await ownerHome({ show, signal });
    return await operatorHome({ show, signal });
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof ApiError && error.status === 401) {
      signOut();
      me = null;
      return unauthorizedPage(error);
    }
    show("Error", h("section", { class: "card error-page" }, h("h1", {}, "Something went wrong"),
      h("p", {}, error instanceof ApiError ? `${error.code}: ${error.message}` : String(error)),
      error instanceof ApiError && error.requestId ? h("p", { class: "mono" }, `request id ${error.requestId}`) : null,
      h("p", {}, h("a", { href: "#/" }, "Back"))));
  }
}

async function configure() {
  const config = await fetch("config.json", { cache: "no-store" }).then((r) => r.json()).catch(() => ({}));
  if (config.sharedOrigin) {
    replace(banner, h("p", { class: "warn" },
      "Local use: functions are served on this same origin (/fn/…), so a function's page could read this console's token. Set HEARTH_APP_DOMAIN before anyone browses untrusted functions here."));
  }
}

window.addEventListener("hashchange", () => void route());
window.addEventListener("hearth:unauthorized", (e) => {
  page.abort();
  signOut();
  me = null;
  unauthorizedPage(/** @type {CustomEvent} */ (e).detail);
});
void configure();
void route();
