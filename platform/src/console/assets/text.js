// Tenant text made visible: a function's log line, an error code or a name
// is rendered with textContent only (never as markup), and the characters
// that would act on or hide text are shown as \uXXXX escapes: C0 controls
// but tab and newline, DEL, C1 controls, bidi overrides and isolates,
// zero-width characters, line and paragraph separators, lone surrogates.
// The same set the hearth CLI escapes (sdk/src/cli/escape.ts).

// eslint-disable-next-line no-control-regex -- control characters are what this pattern finds, to escape them
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** @param {string} text */
export function visible(text) {
  return String(text).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
