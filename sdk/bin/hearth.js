#!/usr/bin/env node
// The `hearth` CLI; runs on Node 20 or newer from the SDK's built output.
import { existsSync } from "node:fs";

const entry = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("hearth: the SDK is not built yet; run `npm install` (or `npm run build`) in the Hearth checkout\n");
  process.exit(1);
}
const { run } = await import(entry.href);
process.exitCode = await run(process.argv);
