import { describe, expect, it } from "vitest";
import { DoorsQuery, Near } from "./api.ts";

describe("where a caller is (near)", () => {
  it("takes a region or <lat>,<lon> in degrees", () => {
    expect(Near.parse("eu")).toEqual({ region: "eu" });
    expect(Near.parse("us-east.1")).toEqual({ region: "us-east.1" });
    expect(Near.parse("52.52,13.40")).toEqual({ lat: 52.52, lon: 13.4 });
    expect(Near.parse("-33.9, 151.2")).toEqual({ lat: -33.9, lon: 151.2 });
  });

  it("refuses anything else, saying what near takes", () => {
    for (const bad of ["91,0", "0,181", "52.5,east", "1,2,3", ",", "eu west", "<script>", "x".repeat(65), ""]) {
      const parsed = Near.safeParse(bad);
      expect(parsed.success, bad).toBe(false);
      expect(parsed.error!.issues[0]!.message).toMatch(/near/);
    }
    expect(DoorsQuery.safeParse({ near: "eu", nearest: "1" }).success).toBe(false);
  });
});
