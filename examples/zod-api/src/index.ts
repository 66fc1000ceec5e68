/**
 * examples/zod-api — a JSON API whose every input is validated with zod: the
 * body of POST /todos, the query of GET /todos and the id in the path. Bad
 * input gets 400 with zod's issues, as the platform's own API does.
 *
 *   curl -X POST "$URL/todos" -d '{"title":"write docs","tags":["docs"]}'
 *   curl "$URL/todos?limit=10&done=false"
 */
import type { HearthFunction } from "@hearth/sdk";
import { z } from "zod";

const NewTodo = z.strictObject({
  title: z.string().trim().min(1).max(200),
  done: z.boolean().default(false),
  tags: z.array(z.string().regex(/^[a-z0-9-]{1,32}$/)).max(10).default([]),
  due: z.iso.date().optional(),
});
const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  done: z.enum(["true", "false"]).transform((v) => v === "true").optional(),
});
const TodoId = z.uuid();

type Todo = z.infer<typeof NewTodo> & { id: string; createdAt: string };

// Kept while the isolate is warm: enough for an example, not a database.
const todos = new Map<string, Todo>();

const invalid = (error: z.ZodError) =>
  Response.json({ error: "invalid input", issues: error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) }, { status: 400 });

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const path = url.pathname; // the path after /fn/<app>/<function>

    if (path === "/todos" && request.method === "POST") {
      let body: unknown;
      try {
        body = await request.json();
      } catch {
        return Response.json({ error: "the body must be JSON" }, { status: 400 });
      }
      const parsed = NewTodo.safeParse(body);
      if (!parsed.success) return invalid(parsed.error);
      const todo: Todo = { ...parsed.data, id: crypto.randomUUID(), createdAt: new Date().toISOString() };
      todos.set(todo.id, todo);
      return Response.json(todo, { status: 201, headers: { location: `${url.pathname}/${todo.id}` } });
    }

    if (path === "/todos" && request.method === "GET") {
      const parsed = ListQuery.safeParse(Object.fromEntries(url.searchParams));
      if (!parsed.success) return invalid(parsed.error);
      const { limit, done } = parsed.data;
      const list = [...todos.values()].filter((t) => done === undefined || t.done === done).slice(0, limit);
      return Response.json({ todos: list, count: list.length });
    }

    const match = /^\/todos\/([^/]+)$/.exec(path);
    if (match && request.method === "GET") {
      const id = TodoId.safeParse(match[1]);
      if (!id.success) return invalid(id.error);
      const todo = todos.get(id.data);
      return todo ? Response.json(todo) : Response.json({ error: "no such todo" }, { status: 404 });
    }

    return Response.json({ error: `no route for ${request.method} ${path}` }, { status: 404 });
  },
} satisfies HearthFunction;
