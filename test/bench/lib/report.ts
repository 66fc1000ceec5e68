/** The figures of a run, as a table for the terminal and for BENCHMARKS.md. */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { natsServerBinary } from "@hearth/devkit";
import { fmt } from "./stats.ts";

/** One figure of Hearth beside the baseline measured in the same run. */
export interface Row {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  baseline: { name: string; value: number } | null;
  /** Which way is better, to read the ratio. */
  better: "lower" | "higher";
}

export interface Section {
  title: string;
  rows: Row[];
  /** Conditions of the measurement, one line each (sizes, concurrency, caveats). */
  notes: string[];
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  natsServer: string;
  kernel: string;
}

export function describeMachine(): Machine {
  let natsServer = "unknown";
  try {
    natsServer = execFileSync(natsServerBinary(), ["--version"], { encoding: "utf8" }).trim().replace(/^nats-server:\s*/, "");
  } catch {
    // reported as unknown
  }
  let kernel = "unknown";
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    // not Linux
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: totalmem() / 1024 ** 3,
    node: process.version,
    natsServer,
    kernel,
  };
}

function ratio(row: Row): string {
  if (!row.baseline || !Number.isFinite(row.baseline.value) || row.baseline.value === 0 || !Number.isFinite(row.value)) return "n/a";
  return `${fmt(row.value / row.baseline.value)}×`;
}

function cell(value: number, unit: string): string {
  return Number.isFinite(value) ? `${fmt(value)} ${unit}` : "n/a";
}

export function renderSections(sections: Section[]): string {
  const lines: string[] = [];
  for (const section of sections) {
    lines.push(`### ${section.title}`, "");
    lines.push("| metric | Hearth | baseline | baseline figure | Hearth ÷ baseline | better |");
    lines.push("| --- | ---: | --- | ---: | ---: | --- |");
    for (const row of section.rows) {
      lines.push(
        `| ${row.metric} | ${cell(row.value, row.unit)} | ${row.baseline?.name ?? "—"} | ${row.baseline ? cell(row.baseline.value, row.unit) : "—"} | ${ratio(row)} | ${row.better} |`,
      );
    }
    if (section.notes.length > 0) {
      lines.push("");
      for (const note of section.notes) lines.push(`- ${note}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

export function renderMachine(m: Machine, mode: string, startedAt: Date, seconds: number): string {
  return [
    `Run: ${startedAt.toISOString()}, ${mode}, ${fmt(seconds)} s in all.`,
    "",
    `Machine: ${m.cpu}, ${m.cores} cores, ${fmt(m.memoryGiB)} GiB memory, Linux ${m.kernel}; Node ${m.node}; nats-server ${m.natsServer}.`,
    "",
  ].join("\n");
}

const BEGIN = "<!-- bench:begin (written by npm run bench; edit outside these markers) -->";
const END = "<!-- bench:end -->";

/**
 * Writes the generated part of BENCHMARKS.md between its markers and keeps
 * everything outside them (the hand-written analysis) as it is.
 */
export function writeBenchmarksMd(path: string, generated: string): void {
  const block = `${BEGIN}\n${generated.trim()}\n${END}`;
  if (!existsSync(path)) {
    writeFileSync(path, `# Benchmarks\n\nMeasured by \`npm run bench\` (test/bench/).\n\n${block}\n`);
    return;
  }
  const text = readFileSync(path, "utf8");
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start === -1 || end === -1 || end < start) {
    writeFileSync(path, `${text.trimEnd()}\n\n${block}\n`);
    return;
  }
  writeFileSync(path, text.slice(0, start) + block + text.slice(end + END.length));
}
