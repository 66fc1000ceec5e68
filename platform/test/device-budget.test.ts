import { describe, expect, it } from "vitest";
import { deviceBudget } from "../src/identity/device-budget.ts";

describe("a device's budget", () => {
  it("lets each device spend its own points and refuses the rest of the window", async () => {
    const budget = deviceBudget({ points: 10, perSeconds: 60 });
    expect(await budget.spend("a", 6)).toBe(true);
    expect(await budget.spend("a", 4)).toBe(true);
    expect(await budget.spend("a")).toBe(false);
    // another device is untouched
    expect(await budget.spend("b", 10)).toBe(true);
  });

  it("refuses one spend bigger than the whole budget", async () => {
    expect(await deviceBudget({ points: 5, perSeconds: 1 }).spend("a", 6)).toBe(false);
  });
});
