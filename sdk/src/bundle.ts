import { HearthError, MAX_BUNDLE_BYTES, type CompatibilityFlag } from "@hearth/protocol";
import type { Plugin } from "esbuild";

/** Node built-ins a bare name also means under nodejs_compat (as in Node: `import "events"` is `node:events`). */
const NODE_BUILTINS = ["async_hooks", "buffer", "crypto", "events", "process", "util"];
const BUILTIN = new RegExp(`^(node:.+|${NODE_BUILTINS.join("|")})$`);

/**
 * Under nodejs_compat, Node built-ins are the runtime's, not bundled: `import`s of them stay imports of
 * `node:<name>` (the device provides them, or refuses the bundle naming what is missing), and a CommonJS
 * `require()` of one becomes such an import too (esbuild cannot leave a `require` to an ES module).
 */
const nodeBuiltins: Plugin = {
  name: "hearth-node-builtins",
  setup(build) {
    build.onResolve({ filter: BUILTIN }, (args) => {
      const path = args.path.startsWith("node:") ? args.path : `node:${args.path}`;
      return args.kind === "require-call" ? { path, namespace: "hearth-node-require" } : { path, external: true };
    });
    build.onLoad({ filter: /.*/, namespace: "hearth-node-require" }, (args) => ({
      contents: `import builtin from ${JSON.stringify(args.path)}; module.exports = builtin;`,
      loader: "js",
    }));
  },
};

/** Without nodejs_compat, a `node:` import fails the bundle with a message that names the flag. */
const nodeBuiltinsRefused: Plugin = {
  name: "hearth-node-builtins-refused",
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => ({
      errors: [{ text: `${args.path} is a Node built-in: deploy with --compat nodejs (compatibilityFlags: ["nodejs_compat"]) to use it` }],
    }));
  },
};

export interface BundleOptions {
  /** Compatibility flags the function is deployed with: `nodejs_compat` leaves Node built-ins to the runtime. */
  compatibilityFlags?: readonly CompatibilityFlag[];
}

/**
 * Bundles a function's entry file (TypeScript or JavaScript) and everything it
 * imports into one ES module with esbuild, the way it will run on devices:
 * web platform only, no Node built-ins unless `nodejs_compat` is on. Under that flag, async functions
 * are compiled to generators, so the runtime's AsyncLocalStorage follows a call across `await`
 * (docs/runtime.md).
 *
 * @example
 * const code = await bundleFunction("examples/hello/src/index.ts");
 * const node = await bundleFunction("src/index.ts", { compatibilityFlags: ["nodejs_compat"] });
 */
export async function bundleFunction(entry: string, options: BundleOptions = {}): Promise<string> {
  const esbuild = await import("esbuild");
  const node = options.compatibilityFlags?.includes("nodejs_compat") === true;
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      format: "esm",
      platform: "neutral",
      target: "es2023",
      mainFields: ["module", "main"],
      conditions: ["workerd", "worker", "browser", "import"],
      logLevel: "silent",
      legalComments: "none",
      ...(node
        ? {
            plugins: [nodeBuiltins],
            // isolated-vm has no async_hooks: an await the runtime sees (a `.then`) carries the async context
            supported: { "async-await": false, "async-generator": false, "for-await": false },
          }
        : { plugins: [nodeBuiltinsRefused] }),
    });
  } catch (error) {
    const failure = error as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] };
    const first = failure.errors?.[0];
    const where = first?.location ? ` at ${first.location.file}:${first.location.line}:${first.location.column}` : "";
    throw new HearthError("ERR_BAD_BUNDLE", `could not bundle ${entry}: ${first?.text ?? (error as Error).message}${where}`);
  }
  const file = result.outputFiles[0];
  if (!file) throw new HearthError("ERR_BAD_BUNDLE", `bundling ${entry} produced no output`);
  if (file.contents.byteLength > MAX_BUNDLE_BYTES) {
    throw new HearthError("ERR_BUNDLE_TOO_LARGE", `the bundle of ${entry} is ${file.contents.byteLength} bytes, over the ${MAX_BUNDLE_BYTES}-byte limit`);
  }
  return file.text;
}
