#!/usr/bin/env node
// hearth-platform runs on Node 24 or newer; say so plainly on older ones.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`hearth-platform needs Node 24 or newer; this is Node ${process.version}.\nRun it through \`npm run demo\` (which installs Node 24 locally) or install Node 24.\n`);
  process.exit(1);
}
await import("../src/main.ts");
