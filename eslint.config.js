// Lint for the whole repo (run by `npm test`, before the tests): ESLint's and
// typescript-eslint's recommended rules, without type information (tsc
// checks types; this catches what it does not: unused code, unsafe patterns).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/node_modules/**", "**/dist/**", ".hearth/**", "test/artifacts/**", "node-agent/src/sandbox/runtime.js", "**/*.d.ts", "coverage/**"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: "module", globals: { process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", setImmediate: "readonly", fetch: "readonly", Response: "readonly", Request: "readonly", Headers: "readonly", TextEncoder: "readonly", TextDecoder: "readonly", performance: "readonly", crypto: "readonly", structuredClone: "readonly", AbortController: "readonly", queueMicrotask: "readonly" } },
    rules: {
      // tsc resolves every name (and knows Node's and the DOM's globals): ESLint's scope check would only disagree with it
      "no-undef": "off",
      // a `let` assigned once after the closures that read it (a handle made after its callbacks) stays a let
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
    },
  },
  {
    // the isolate's runtime files are concatenated into one script: each defines what another file calls
    files: ["node-agent/src/sandbox/runtime/**/*.js"],
    rules: { "@typescript-eslint/no-unused-vars": "off" },
  },
);
