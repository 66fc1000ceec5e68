#!/usr/bin/env node
// hearth-agent runs on Node 24 or newer (isolated-vm 7 needs it); say so plainly on older ones.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`hearth-agent needs Node 24 or newer; this is Node ${process.version}.\nRun it through \`npm run demo\` (which installs Node 24 locally) or install Node 24.\n`);
  process.exit(1);
}
await import("../src/cli.ts");
