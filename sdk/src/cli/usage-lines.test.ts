import type { UsageDoor } from "@hearth/protocol";
import { describe, expect, it } from "vitest";
import { usageLines } from "./index.ts";

const totals = (calls: number, doors: Partial<Record<UsageDoor, number>>) => ({
  calls, errors: 0, coldStarts: 0, cpuUs: 1500, wallUs: 3000, requestBytes: 10, responseBytes: 20, cpuSeconds: 0.0015,
  doors: { gateway: 0, device: 0, "device-relay": 0, call: 0, "call-relay": 0, ...doors },
});

describe("hearth usage", () => {
  it("says by which door each function's calls came in, those that had any", () => {
    const lines = usageLines({
      apps: [{ app: "shop", totals: totals(6, { gateway: 3, device: 2, call: 1 }), days: [
        { day: "2026-12-03", totals: totals(6, { gateway: 3, device: 2, call: 1 }), functions: [
          { fn: "cart", ...totals(5, { gateway: 3, device: 2 }) },
          { fn: "price", ...totals(1, { call: 1 }) },
        ] },
      ] }],
    });
    expect(lines[1]).toMatch(/by door$/);
    expect(lines.find((l) => l.startsWith("  cart"))).toMatch(/gateway 3, device 2$/);
    expect(lines.find((l) => l.startsWith("  price"))).toMatch(/ call 1$/);
    expect(lines.find((l) => l.startsWith("total"))).toMatch(/gateway 3, device 2, call 1$/);
  });
});
