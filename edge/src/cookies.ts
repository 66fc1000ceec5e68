/**
 * What a function's `Set-Cookie` may reach. On its own host a cookie is the
 * app's alone as long as it names no `Domain` (a `Domain` would hand it to
 * the parent domain: every other app's host and, without the Public Suffix
 * List, the API's site). On the shared origin of the path form a cookie
 * must also stay under `/fn/<app>/`, or one app sets or overwrites another's.
 * docs/security.md, "Browsers: one origin per app", says why.
 */

/**
 * Scopes one `Set-Cookie` value: drops every `Domain` attribute (the cookie
 * becomes host-only), and with a `pathPrefix` (the path form's `/fn/<app>`)
 * reads `Path` in the app's own path space, as on its host, and moves it
 * under the prefix: `Path=/` becomes `Path=/fn/<app>/`. A `Path` that does
 * not start with `/` is dropped, so the browser's default applies (the
 * request's own directory, already under the prefix).
 */
export function scopeSetCookie(value: string, pathPrefix?: string): string {
  const parts = value.split(";");
  const out = [parts[0]!];
  let path: string | undefined;
  for (let i = 1; i < parts.length; i++) {
    const attribute = parts[i]!.trim();
    if (attribute === "") continue;
    const eq = attribute.indexOf("=");
    const name = (eq < 0 ? attribute : attribute.slice(0, eq)).trim().toLowerCase();
    if (name === "domain") continue;
    if (name === "path" && pathPrefix !== undefined) {
      // the last Path counts, as in browsers (RFC 6265 §5.3)
      path = eq < 0 ? "" : attribute.slice(eq + 1).trim();
      continue;
    }
    out.push(attribute);
  }
  if (pathPrefix !== undefined && path?.startsWith("/")) out.push(`Path=${pathPrefix}${path}`);
  return out.join("; ");
}
