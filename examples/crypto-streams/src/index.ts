/**
 * examples/crypto-streams — Web Crypto and web streams in a function:
 *
 *   POST /token    {"sub":"ada"}  -> an HMAC-SHA256 signed token (key: env.TOKEN_KEY)
 *   GET  /verify?token=...        -> the token's claims, or 401
 *   POST /digest   <any bytes>    -> SHA-256 and size of the body, read as a stream
 *   POST /upper    <text>         -> the body upper-cased through a TransformStream, streamed back
 *   GET  /ticks?n=5               -> n NDJSON lines produced by a ReadableStream over timers
 */
import type { HearthFunction } from "@hearth/sdk";

interface Env {
  TOKEN_KEY?: string;
}

const encoder = new TextEncoder();
const b64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (s: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const hex = (buffer: ArrayBuffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");

const hmacKey = (secret: string) =>
  crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);

async function sign(claims: object, secret: string): Promise<string> {
  const payload = b64url(encoder.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(payload));
  return `${payload}.${b64url(new Uint8Array(signature))}`;
}

async function verify(token: string, secret: string): Promise<unknown> {
  const [payload, signature] = token.split(".");
  if (!payload || !signature) return null;
  let sig: Uint8Array<ArrayBuffer>;
  try {
    sig = fromB64url(signature);
  } catch {
    return null;
  }
  const ok = await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, encoder.encode(payload));
  return ok ? JSON.parse(new TextDecoder().decode(fromB64url(payload))) : null;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const path = url.pathname; // the path after /fn/<app>/<function>
    const secret = env.TOKEN_KEY ?? "example-key-change-me";

    if (path === "/token" && request.method === "POST") {
      const claims = (await request.json()) as Record<string, unknown>;
      const token = await sign({ ...claims, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID() }, secret);
      return Response.json({ token });
    }

    if (path === "/verify") {
      const claims = await verify(url.searchParams.get("token") ?? "", secret);
      return claims ? Response.json({ valid: true, claims }) : Response.json({ valid: false }, { status: 401 });
    }

    if (path === "/digest" && request.method === "POST" && request.body) {
      // Count the bytes as they stream through, then hash what came.
      let size = 0;
      const chunks: Uint8Array[] = [];
      const counter = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          size += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      const reader = request.body.pipeThrough(counter).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        chunks.push(value);
      }
      const all = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.byteLength;
      }
      return Response.json({ size, sha256: hex(await crypto.subtle.digest("SHA-256", all)) });
    }

    if (path === "/upper" && request.method === "POST" && request.body) {
      const upper = new TransformStream<string, string>({
        transform(text, controller) {
          controller.enqueue(text.toUpperCase());
        },
      });
      const body = request.body.pipeThrough(new TextDecoderStream()).pipeThrough(upper).pipeThrough(new TextEncoderStream());
      return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
    }

    if (path === "/ticks") {
      const n = Math.min(50, Math.max(1, Number(url.searchParams.get("n") ?? 3) || 3));
      let i = 0;
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          controller.enqueue(encoder.encode(JSON.stringify({ tick: ++i, id: crypto.randomUUID() }) + "\n"));
          if (i >= n) controller.close();
        },
      });
      return new Response(stream, { headers: { "content-type": "application/x-ndjson" } });
    }

    return Response.json({ error: "not found" }, { status: 404 });
  },
} satisfies HearthFunction<Env>;
