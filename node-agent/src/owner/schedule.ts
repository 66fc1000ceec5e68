/**
 * Schedule windows: when the owner lets the device serve. A window is
 * `<days> HH:MM-HH:MM` in the machine's local time, e.g. `weekdays 22:00-07:00`
 * (a window that ends before it starts runs past midnight, into the next
 * day), `weekends 00:00-24:00`, `mon,wed,fri 09:00-17:30`, `daily 01:00-06:00`.
 */
import { z } from "zod";

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const;
const GROUPS: Record<string, number[]> = {
  daily: [0, 1, 2, 3, 4, 5, 6],
  everyday: [0, 1, 2, 3, 4, 5, 6],
  weekdays: [1, 2, 3, 4, 5],
  weekends: [0, 6],
};

export interface ScheduleWindow {
  /** The text it came from, for messages. */
  text: string;
  /** Days (0 = Sunday) on which the window starts. */
  days: number[];
  /** Minutes after midnight. */
  start: number;
  end: number;
}

const WINDOW = /^\s*([a-z,]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/;

/** Parses one window, or returns why it is not one. */
export function parseWindow(text: string): ScheduleWindow | string {
  const m = WINDOW.exec(text.toLowerCase());
  if (!m) return `'${text}' is not '<days> HH:MM-HH:MM' (e.g. 'weekdays 22:00-07:00')`;
  const days = new Set<number>();
  for (const part of m[1]!.split(",")) {
    if (GROUPS[part]) GROUPS[part]!.forEach((d) => days.add(d));
    else if ((DAY_NAMES as readonly string[]).includes(part)) days.add(DAY_NAMES.indexOf(part as (typeof DAY_NAMES)[number]));
    else return `'${part}' in '${text}' is not a day (mon..sun, weekdays, weekends or daily)`;
  }
  const [sh, sm, eh, em] = [m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number];
  if (sh > 23 || sm > 59) return `start ${m[2]}:${m[3]} in '${text}' is not a time of day`;
  if (eh > 24 || em > 59 || (eh === 24 && em !== 0)) return `end ${m[4]}:${m[5]} in '${text}' is not a time of day (24:00 is the latest)`;
  const start = sh * 60 + sm;
  const end = eh * 60 + em;
  if (start === end) return `'${text}' is empty: start and end are the same`;
  return { text, days: [...days].sort(), start, end };
}

/** A zod schema for one window string (config files and flags). */
export const ScheduleWindowSchema = z.string().max(64).transform((text, ctx) => {
  const parsed = parseWindow(text);
  if (typeof parsed === "string") {
    ctx.addIssue({ code: "custom", message: parsed });
    return z.NEVER;
  }
  return parsed;
});

/** True when `at` (local time) falls in one of the windows; no windows means always. */
export function inSchedule(windows: readonly ScheduleWindow[], at: Date): boolean {
  if (windows.length === 0) return true;
  const day = at.getDay();
  const minute = at.getHours() * 60 + at.getMinutes();
  const yesterday = (day + 6) % 7;
  return windows.some((w) => {
    if (w.start < w.end) return w.days.includes(day) && minute >= w.start && minute < w.end;
    // past midnight: the part from start to midnight today, or the tail from midnight of a window that began yesterday
    return (w.days.includes(day) && minute >= w.start) || (w.days.includes(yesterday) && minute < w.end);
  });
}
