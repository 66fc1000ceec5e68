/** Turns a zod error into one readable sentence naming each bad field. */
import type { z } from "zod";

export function formatZodError(error: z.ZodError, subject = "input"): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    const where = issue.path.length > 0 ? issue.path.map(String).join(".") : subject;
    return `${where}: ${issue.message}`;
  });
  const more = error.issues.length > 5 ? ` (and ${error.issues.length - 5} more)` : "";
  return `invalid ${subject}: ${parts.join("; ")}${more}`;
}
