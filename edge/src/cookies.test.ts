import { describe, expect, it } from "vitest";
import { scopeSetCookie } from "./cookies.ts";

describe("Set-Cookie on an app's own host", () => {
  it("drops every Domain attribute, so a cookie is host-only: no other app's host or the parent domain gets it", () => {
    expect(scopeSetCookie("sid=1; Domain=fn.example.org; Path=/; Secure; HttpOnly")).toBe("sid=1; Path=/; Secure; HttpOnly");
    expect(scopeSetCookie("sid=1;domain=.example.org ;DOMAIN=shop.fn.example.org")).toBe("sid=1");
  });

  it("leaves Path and every other attribute as the function wrote them", () => {
    expect(scopeSetCookie("a=b; Path=/cart; Max-Age=60; SameSite=Lax; Expires=Wed, 21 Oct 2026 07:28:00 GMT")).toBe(
      "a=b; Path=/cart; Max-Age=60; SameSite=Lax; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
    );
  });
});

describe("Set-Cookie on the shared origin of the path form", () => {
  const prefix = "/fn/shop";

  it("moves Path under /fn/<app>, read as on the app's own host", () => {
    expect(scopeSetCookie("sid=1; Path=/", prefix)).toBe("sid=1; Path=/fn/shop/");
    expect(scopeSetCookie("sid=1; Path=/cart/x; Secure", prefix)).toBe("sid=1; Secure; Path=/fn/shop/cart/x");
    // a path meant to reach another app stays inside this one
    expect(scopeSetCookie("sid=1; Path=/fn/other/", prefix)).toBe("sid=1; Path=/fn/shop/fn/other/");
  });

  it("takes the last Path, as browsers do, and drops one that is not a path (the browser's default is the request's own directory)", () => {
    expect(scopeSetCookie("sid=1; Path=/a; path=/b", prefix)).toBe("sid=1; Path=/fn/shop/b");
    expect(scopeSetCookie("sid=1; Path=other", prefix)).toBe("sid=1");
    expect(scopeSetCookie("sid=1; Path", prefix)).toBe("sid=1");
    expect(scopeSetCookie("sid=1", prefix)).toBe("sid=1");
  });

  it("drops Domain there too", () => {
    expect(scopeSetCookie("sid=1; Domain=127.0.0.1; Path=/", prefix)).toBe("sid=1; Path=/fn/shop/");
  });
});
