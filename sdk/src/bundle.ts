import { HearthError, MAX_BUNDLE_BYTES } from "@hearth/protocol";

/**
 * Bundles a function's entry file (TypeScript or JavaScript) and everything it
 * imports into one ES module with esbuild, the way it will run on devices:
 * web platform only, no Node built-ins.
 *
 * @example
 * const code = await bundleFunction("examples/hello/src/index.ts");
 */
export async function bundleFunction(entry: string): Promise<string> {
  const esbuild = await import("esbuild");
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
