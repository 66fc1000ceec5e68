import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { IdleGate, onBattery } from "./sensors.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fake /sys/class/power_supply. */
function sysfs(supplies: Record<string, Record<string, string>>): string {
  const root = mkdtempSync(join(tmpdir(), "hearth-power-"));
  dirs.push(root);
  for (const [name, files] of Object.entries(supplies)) {
    mkdirSync(join(root, name));
    for (const [file, value] of Object.entries(files)) writeFileSync(join(root, name, file), value + "\n");
  }
  return root;
}

describe("battery", () => {
  it("says battery when the battery discharges", () => {
    expect(onBattery(sysfs({ BAT0: { type: "Battery", status: "Discharging" }, AC: { type: "Mains", online: "0" } }))).toBe(true);
  });
  it("says mains when plugged in, even while charging", () => {
    expect(onBattery(sysfs({ BAT0: { type: "Battery", status: "Charging" }, AC: { type: "Mains", online: "1" } }))).toBe(false);
  });
  it("does not know on a machine without power supplies (a server, a container)", () => {
    expect(onBattery(sysfs({}))).toBeUndefined();
    expect(onBattery("/nonexistent/power_supply")).toBeUndefined();
  });
});

describe("idle-only hysteresis", () => {
  it("pauses only after the load stays high, and resumes only after it stays low", () => {
    const gate = new IdleGate({ pauseAbove: 0.6, resumeBelow: 0.3, forMs: 1_000 });
    expect(gate.update(0.9, 0)).toBe(false);
    expect(gate.update(0.2, 500)).toBe(false); // a short spike changes nothing
    expect(gate.update(0.9, 600)).toBe(false);
    expect(gate.update(0.9, 1_599)).toBe(false);
    expect(gate.update(0.9, 1_600)).toBe(true); // high for 1 s: the owner is busy
    expect(gate.update(0.5, 2_000)).toBe(true); // between the thresholds: stays busy
    expect(gate.update(0.1, 3_000)).toBe(true);
    expect(gate.update(0.1, 3_999)).toBe(true);
    expect(gate.update(0.1, 4_000)).toBe(false); // low for 1 s: idle again
  });
});
