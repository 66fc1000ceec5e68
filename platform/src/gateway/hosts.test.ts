import { describe, expect, it } from "vitest";
import { AppHosts, firstSegment, RequestHostName } from "./hosts.ts";

/** The host name a request to `host` has once the URL parser has read it, as the gateway sees it. */
const hostnameOf = (host: string) => new URL(`http://${host}/`).hostname;

describe("request host names", () => {
  it.each(["localhost", "127.0.0.1", "[::1]", "shop.fn.example.org", "SHOP.FN.EXAMPLE.ORG", "shop.fn.example.org.", "my_service", "a-b.c"])("accepts %s", (host) => {
    expect(RequestHostName.safeParse(hostnameOf(host)).success).toBe(true);
  });

  it.each([
    ["a label over 63 characters", `${"a".repeat(64)}.example.org`],
    ["a name over 253 characters", Array.from({ length: 50 }, () => "abcdef").join(".")],
    ["a character no DNS name has", "a$b.example.org"],
    ["a quote", "a'b.example.org"],
    ["a label starting with '-'", "-a.example.org"],
    ["an empty label", "a..example.org"],
  ])("refuses %s", (_why, host) => {
    expect(RequestHostName.safeParse(hostnameOf(host)).success).toBe(false);
  });
});

describe("app hosts", () => {
  const hosts = new AppHosts("fn.example.org", () => "https://api.example.org");

  it("finds the app of its own host, in any case, with a trailing dot", () => {
    expect(hosts.classify(hostnameOf("shop.fn.example.org"))).toEqual({ kind: "app", app: "shop" });
    expect(hosts.classify(hostnameOf("Shop.FN.example.org:8443"))).toEqual({ kind: "app", app: "shop" });
    expect(hosts.classify(hostnameOf("shop.fn.example.org."))).toEqual({ kind: "app", app: "shop" });
  });

  it("keeps the app domain itself and names under it that are no app's host for no one", () => {
    expect(hosts.classify("fn.example.org")).toEqual({ kind: "app-domain", label: "" });
    expect(hosts.classify("a.shop.fn.example.org")).toMatchObject({ kind: "app-domain" });
    expect(hosts.classify("a_b.fn.example.org")).toMatchObject({ kind: "app-domain" });
  });

  it("leaves every other host (the API's) alone", () => {
    for (const host of ["api.example.org", "example.org", "xfn.example.org", "fn.example.org.evil.test", "127.0.0.1"]) {
      expect(hosts.classify(host), host).toEqual({ kind: "other" });
    }
  });

  it("builds app URLs with the public URL's scheme and port", () => {
    expect(hosts.functionUrl("shop", "cart")).toBe("https://shop.fn.example.org/cart");
    expect(new AppHosts("localhost", () => "http://127.0.0.1:8787").origin("demo")).toBe("http://demo.localhost:8787");
  });

  it("refuses an app domain that is not a DNS name", () => {
    for (const domain of ["Fn.Example.org", "fn.example.org.", "https://fn.example.org", "fn.example.org:8443", "10.0.0.1", ""]) {
      expect(() => new AppHosts(domain, () => "http://x"), domain).toThrow();
    }
  });
});

describe("firstSegment", () => {
  it.each([
    ["/cart", ["cart", "/"]],
    ["/cart/", ["cart", "/"]],
    ["/cart/items/1", ["cart", "/items/1"]],
    ["/", ["", "/"]],
    ["", ["", "/"]],
  ])("%s", (path, expected) => {
    expect(firstSegment(path)).toEqual(expected);
  });
});
