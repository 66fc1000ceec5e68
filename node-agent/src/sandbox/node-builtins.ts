/**
 * The `node:*` modules a function deployed with `nodejs_compat` may import
 * (docs/runtime.md). Each is a small ES module made here, whose exports read
 * the runtime's own objects (runtime/node.js) through a global the runtime
 * defines only for such functions; a function without the flag that imports
 * one is refused at load with a message naming the flag.
 */

/** Each built-in's named exports (besides `default`), as runtime/node.js makes them. */
export const NODE_BUILTINS: Readonly<Record<string, readonly string[]>> = {
  buffer: ["Buffer", "SlowBuffer", "kMaxLength", "INSPECT_MAX_BYTES", "constants", "Blob", "File", "atob", "btoa"],
  events: ["EventEmitter", "once", "defaultMaxListeners"],
  util: [
    "format", "formatWithOptions", "inspect", "promisify", "callbackify", "inherits", "deprecate", "isDeepStrictEqual",
    "types", "debuglog", "debug", "TextEncoder", "TextDecoder", "isArray",
  ],
  async_hooks: ["AsyncLocalStorage", "AsyncResource"],
  crypto: [
    "createHash", "createHmac", "randomBytes", "randomInt", "randomUUID", "getRandomValues", "timingSafeEqual", "getHashes",
    "Hash", "webcrypto", "subtle",
  ],
  process: ["env", "nextTick", "version", "versions", "platform", "arch", "argv", "cwd", "hrtime", "emitWarning", "exit", "uptime"],
};

/** The built-in a specifier names (`node:events` or bare `events`), or undefined. */
export function builtinName(specifier: string): string | undefined {
  const name = specifier.startsWith("node:") ? specifier.slice(5) : specifier;
  return Object.hasOwn(NODE_BUILTINS, name) ? name : undefined;
}

/** The ES module source of a built-in. */
export function builtinSource(name: string): string {
  const exports = NODE_BUILTINS[name] ?? [];
  return [
    `const m = globalThis[Symbol.for("hearth.node.builtin")](${JSON.stringify(name)});`,
    "export default m.default;",
    ...exports.map((e) => `export const ${e} = m.${e};`),
  ].join("\n");
}

/** Why an import cannot be resolved, for the ERR_BAD_BUNDLE the caller gets. */
export function unresolvedImport(specifier: string, nodejsCompat: boolean): string {
  const known = builtinName(specifier);
  const list = Object.keys(NODE_BUILTINS).map((n) => `node:${n}`).join(", ");
  if (known !== undefined && !nodejsCompat) {
    return `import of '${specifier}' needs Node compatibility: deploy with the nodejs_compat flag (hearth deploy --compat nodejs, or compatibilityFlags: ["nodejs_compat"])`;
  }
  if (specifier.startsWith("node:")) {
    return nodejsCompat
      ? `'${specifier}' is not among the Node built-ins Hearth provides (${list}); see docs/runtime.md`
      : `import of '${specifier}': Node built-ins need the nodejs_compat flag (hearth deploy --compat nodejs), and Hearth provides only ${list}`;
  }
  return `import of '${specifier}' is not supported: bundle the function first (hearth deploy does)`;
}
