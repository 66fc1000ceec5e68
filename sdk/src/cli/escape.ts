/**
 * Tenant text made safe for a developer's terminal. A function's log line is
 * whatever the function wrote: an ANSI or OSC escape sequence in it would
 * act on the terminal that prints it (recolour, move the cursor, rewrite the
 * window title, hide text, write the clipboard with OSC 52, make links with
 * OSC 8). Every control character is therefore shown as a visible escape
 * (`\u001b`) instead of being written, and so are the Unicode format
 * characters that reorder or hide text (bidi overrides, line and paragraph
 * separators, zero-width characters).
 */

/**
 * C0 controls but tab and newline, DEL, C1 controls (0x9b is CSI on
 * terminals that take 8-bit controls), and the invisible format characters:
 * bidi marks, embeddings, overrides and isolates, zero-width ones, line and
 * paragraph separators, the BOM, and lone surrogates.
 */
// eslint-disable-next-line no-control-regex -- control characters are what this pattern finds, to escape them
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

function visible(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** Indentation of a message's later lines: a real line starts with its time at column 0, so a tenant's `\n` cannot pass for one. */
export const CONTINUATION_INDENT = "    ";

/**
 * A tenant's text as it may be printed on a terminal: unsafe characters
 * become `\uXXXX`; a newline stays a line break but the next line is
 * indented (`newlines: "indent"`, for people) or is escaped too
 * (`newlines: "escape"`, one line per message).
 *
 * @example
 * escapeForTerminal("\x1b]0;pwned\x07hi") // => "\\u001b]0;pwned\\u0007hi"
 */
export function escapeForTerminal(text: string, options: { newlines?: "indent" | "escape" } = {}): string {
  const escaped = text.replace(UNSAFE, visible);
  return options.newlines === "escape" ? escaped.replace(/\n/g, "\\n") : escaped.replace(/\n/g, `\n${CONTINUATION_INDENT}`);
}

/**
 * JSON for a terminal: JSON.stringify already escapes C0 controls, but not
 * DEL, C1 controls or the format characters above; this escapes those too,
 * and the result is still the same JSON value.
 */
export function jsonForTerminal(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, visible);
}
