import { describe, expect, it } from "vitest";
import { inSchedule, parseWindow, type ScheduleWindow } from "./schedule.ts";

function w(text: string): ScheduleWindow {
  const parsed = parseWindow(text);
  if (typeof parsed === "string") throw new Error(parsed);
  return parsed;
}

/** A local time: 2026-11-23 is a Monday. */
const at = (day: number, hh: number, mm = 0) => new Date(2026, 10, 22 + day, hh, mm);

describe("schedule windows", () => {
  it("serves always with no windows", () => {
    expect(inSchedule([], at(1, 12))).toBe(true);
  });

  it("runs a weekday night window past midnight into the next morning", () => {
    const nights = [w("weekdays 22:00-07:00")];
    expect(inSchedule(nights, at(1, 21, 59))).toBe(false); // Monday evening
    expect(inSchedule(nights, at(1, 22, 0))).toBe(true);
    expect(inSchedule(nights, at(2, 6, 59))).toBe(true); // Tuesday early: Monday's window
    expect(inSchedule(nights, at(2, 7, 0))).toBe(false);
    expect(inSchedule(nights, at(0, 23))).toBe(false); // Sunday night: not a weekday start
    expect(inSchedule(nights, at(1, 3))).toBe(false); // Monday 03:00: Sunday's night was not a window
    expect(inSchedule(nights, at(6, 3))).toBe(true); // Saturday 03:00: Friday's night
  });

  it("takes day lists, groups and 24:00", () => {
    expect(inSchedule([w("weekends 00:00-24:00")], at(6, 23, 59))).toBe(true);
    expect(inSchedule([w("weekends 00:00-24:00")], at(5, 12))).toBe(false);
    expect(inSchedule([w("mon,wed 09:00-17:30")], at(3, 17, 29))).toBe(true);
    expect(inSchedule([w("mon,wed 09:00-17:30")], at(2, 12))).toBe(false);
    expect(inSchedule([w("Daily 01:00-02:00")], at(4, 1, 30))).toBe(true);
  });

  it.each([
    ["weekdays", /is not '<days> HH:MM-HH:MM'/],
    ["someday 10:00-11:00", /'someday' .* is not a day/],
    ["mon 25:00-26:00", /start 25:00 .* is not a time of day/],
    ["mon 10:00-24:30", /end 24:30 .*\(24:00 is the latest\)/],
    ["mon 10:00-10:00", /is empty/],
  ])("explains why %j is not a window", (text, message) => {
    expect(parseWindow(text)).toMatch(message);
  });
});
