// Builds the SDK for Node 20+: one ES module per entry, with @hearth/protocol
// bundled in (it is TypeScript source) and npm dependencies left external.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
await build({
  entryPoints: { index: join(root, "src/index.ts"), cli: join(root, "src/cli/index.ts") },
  outdir: join(root, "dist"),
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  // @hearth/protocol is source in this repo: bundle it rather than import it at run time
  alias: { "@hearth/protocol": join(root, "../protocol/src/index.ts") },
  logLevel: "warning",
});
