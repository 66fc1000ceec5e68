/**
 * examples/hello — a first Hearth function. Reads its path and the `name`
 * query parameter, writes one log line (`hearth logs`, the console) and
 * answers JSON.
 *
 *   curl "$URL/greet?name=Ada"
 *   {"message":"Hello, Ada!","path":"/greet","method":"GET"}
 */
import type { HearthFunction } from "@hearth/sdk";

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name")?.trim() || "world";
    if (name.length > 100) {
      return Response.json({ error: "name must be at most 100 characters" }, { status: 400 });
    }
    console.log(`greeting ${name}`);
    return Response.json({ message: `Hello, ${name}!`, path: url.pathname, method: request.method });
  },
} satisfies HearthFunction;
