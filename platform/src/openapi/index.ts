/**
 * The API's OpenAPI 3.1 document (`GET /openapi.json`), made from the same
 * zod schemas that validate the routes and type their answers: one table
 * below names each route, who may call it, its inputs and its answers, and
 * zod writes the JSON Schemas (`z.toJSONSchema`, draft 2020-12, which
 * OpenAPI 3.1 uses). A test checks that every route the platform serves is
 * in the table and that real answers validate against the document
 * (platform/test/openapi.test.ts). Every error is the one envelope.
 */
import {
  AppName,
  AppNetworkSettings,
  AppNetworkView,
  AppOwner,
  AppOwnerRequest,
  CreateDeveloperRequest,
  CreateDeveloperResponse,
  CreateTokenRequest,
  DeveloperId,
  DeveloperList,
  DeviceCredits,
  DeviceId,
  DeviceList,
  DeviceNetworkJoinRequest,
  DeviceNetworkJoinResponse,
  DeviceNetworksView,
  DoorList,
  ERROR_CODES,
  FabricCredential,
  FunctionList,
  FunctionName,
  FunctionStatsReport,
  FunctionView,
  HealthResponse,
  IssuedToken,
  JoinRequest,
  JoinResponse,
  JoinTokenRequest,
  JoinTokenResponse,
  LogList,
  LogsQuery,
  NetworkInviteRequest,
  NetworkInviteResponse,
  OperatorView,
  OwnerView,
  ReconcileReport,
  RepairReport,
  RevokeResponse,
  RollbackRequest,
  StatsQuery,
  TokenId,
  TokenList,
  UsageReport,
  VersionList,
  WhoAmI,
} from "@hearth/protocol";
import { z } from "zod";
import { DeployQuery } from "../api/index.ts";
import { CreditsQuery } from "../identity/routes.ts";
import { ReconcileQuery, UsageQuery } from "../ledger/index.ts";

/** Who may call a route: the names of the document's security schemes, or nobody in particular. */
type Auth = "developerToken" | "operatorToken" | "deviceToken" | "none";

/** An answer's body: a zod schema (JSON), or one of the few that are not JSON. */
type Body = z.ZodType | "empty" | "event-stream" | "prometheus" | "any";

export interface RouteSpec {
  method: "get" | "post" | "put" | "delete" | "patch" | "head" | "options";
  /** As the platform's router has it: `/v1/apps/:app/functions/:fn`. */
  path: string;
  summary: string;
  auth: Auth[];
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** The request body: JSON of this schema, or the function's bundled module. */
  body?: z.ZodType | "bundle" | "any";
  responses: Record<number, Body>;
  /** Statuses answered with the error envelope (besides 500, which every route may answer). */
  errors: number[];
}

const FunctionParams = z.object({ app: AppName, fn: FunctionName });
const AppParams = z.object({ app: AppName });
const DeviceParams = z.object({ id: DeviceId });
const MemberParams = z.object({ app: AppName, device: DeviceId });
const DeviceNetworkParams = z.object({ id: DeviceId, app: AppName });
const DeveloperParams = z.object({ id: DeveloperId });
const TokenParams = z.object({ id: DeveloperId, tokenId: TokenId });
const GatewayParams = z.object({ app: AppName, fn: FunctionName, path: z.string().describe("the rest of the path, which the function sees as its own") });

const AUTH = [401, 403];
const DEVELOPER: Auth[] = ["developerToken"];
const OPERATOR: Auth[] = ["operatorToken"];

/** Every route of the platform's HTTP app but the console's pages (docs/console.md). */
export const ROUTES: RouteSpec[] = [
  { method: "get", path: "/v1/health", summary: "Liveness, and whether state is embedded", auth: ["none"], responses: { 200: HealthResponse }, errors: [] },
  { method: "get", path: "/v1/whoami", summary: "Who this token is", auth: ["developerToken", "operatorToken", "deviceToken"], responses: { 200: WhoAmI }, errors: [401] },
  { method: "put", path: "/v1/apps/:app/functions/:fn", summary: "Deploy a function (the body is its bundled ES module; env in the Hearth-Env header)", auth: DEVELOPER, params: FunctionParams, query: DeployQuery, body: "bundle", responses: { 200: FunctionView, 201: FunctionView }, errors: [400, ...AUTH, 404, 413] },
  { method: "get", path: "/v1/functions", summary: "The caller's functions", auth: DEVELOPER, responses: { 200: FunctionList }, errors: AUTH },
  { method: "get", path: "/v1/apps/:app/doors", summary: "The reachable doors of an app's network, nearest first (public: for the app's own callers)", auth: ["none"], params: AppParams, query: z.strictObject({ near: z.string().describe("a region (eu) or <lat>,<lon> in degrees (52.52,13.40)").optional() }), responses: { 200: DoorList }, errors: [400, 404, 429] },
  { method: "get", path: "/v1/apps/:app/functions", summary: "One app's functions (none for an app that is not the caller's)", auth: DEVELOPER, params: AppParams, responses: { 200: FunctionList }, errors: [400, ...AUTH] },
  { method: "get", path: "/v1/apps/:app/functions/:fn", summary: "One function: record, status, devices, URL, env names", auth: DEVELOPER, params: FunctionParams, responses: { 200: FunctionView }, errors: [400, ...AUTH, 404] },
  { method: "delete", path: "/v1/apps/:app/functions/:fn", summary: "Delete a function", auth: DEVELOPER, params: FunctionParams, responses: { 204: "empty" }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/apps/:app/functions/:fn/versions", summary: "A function's versions, newest first", auth: DEVELOPER, params: FunctionParams, responses: { 200: VersionList }, errors: [400, ...AUTH, 404] },
  { method: "post", path: "/v1/apps/:app/functions/:fn/rollback", summary: "Point a function at an older version", auth: DEVELOPER, params: FunctionParams, body: RollbackRequest, responses: { 200: FunctionView }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/apps/:app/functions/:fn/logs", summary: "A function's console lines; follow=1 answers Server-Sent Events (event: line, event: error)", auth: DEVELOPER, params: FunctionParams, query: LogsQuery, responses: { 200: LogList }, errors: [400, ...AUTH, 404, 503] },
  { method: "get", path: "/v1/apps/:app/functions/:fn/stats", summary: "A function's calls, errors and p50/p99 wall time by minute (hour) or 15 minutes (day), recent errors, usage by day", auth: DEVELOPER, params: FunctionParams, query: StatsQuery, responses: { 200: FunctionStatsReport }, errors: [400, ...AUTH, 404] },
  { method: "post", path: "/v1/apps/:app/network/invites", summary: "A single-use invite into the app's network, for a device owner", auth: DEVELOPER, params: AppParams, body: NetworkInviteRequest, responses: { 201: NetworkInviteResponse }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/apps/:app/network", summary: "Whether the app is private, and the devices invited into its network", auth: DEVELOPER, params: AppParams, responses: { 200: AppNetworkView }, errors: [400, ...AUTH, 404] },
  { method: "put", path: "/v1/apps/:app/network", summary: "Make the app private (invited devices only) or public", auth: DEVELOPER, params: AppParams, body: AppNetworkSettings, responses: { 200: AppNetworkView }, errors: [400, ...AUTH, 404] },
  { method: "delete", path: "/v1/apps/:app/network/members/:device", summary: "Remove a device from the app's network (unplaced, credential re-issued without it)", auth: DEVELOPER, params: MemberParams, responses: { 204: "empty" }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/usage", summary: "Usage of the caller's apps, by day and function", auth: DEVELOPER, query: UsageQuery, responses: { 200: UsageReport }, errors: [400, ...AUTH, 503] },
  { method: "get", path: "/v1/devices", summary: "Live devices", auth: OPERATOR, responses: { 200: DeviceList }, errors: AUTH },
  { method: "post", path: "/v1/join-tokens", summary: "A single-use join token for a device owner", auth: OPERATOR, body: JoinTokenRequest, responses: { 201: JoinTokenResponse }, errors: [400, ...AUTH] },
  { method: "post", path: "/v1/ledger/reconcile", summary: "The ledger against the usage stream; repair=1 repairs first", auth: OPERATOR, query: ReconcileQuery, responses: { 200: z.union([ReconcileReport, RepairReport]) }, errors: [400, ...AUTH, 503] },
  { method: "post", path: "/v1/developers", summary: "Create a developer and their first token (shown once)", auth: OPERATOR, body: CreateDeveloperRequest, responses: { 201: CreateDeveloperResponse }, errors: [400, ...AUTH, 409] },
  { method: "get", path: "/v1/developers", summary: "Developers", auth: OPERATOR, responses: { 200: DeveloperList }, errors: AUTH },
  { method: "post", path: "/v1/developers/:id/tokens", summary: "Another token for a developer (shown once)", auth: OPERATOR, params: DeveloperParams, body: CreateTokenRequest, responses: { 201: IssuedToken }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/developers/:id/tokens", summary: "A developer's tokens, never their values", auth: OPERATOR, params: DeveloperParams, responses: { 200: TokenList }, errors: [400, ...AUTH, 404] },
  { method: "delete", path: "/v1/developers/:id/tokens/:tokenId", summary: "Revoke a token", auth: OPERATOR, params: TokenParams, responses: { 204: "empty" }, errors: [400, ...AUTH, 404] },
  { method: "put", path: "/v1/apps/:app/owner", summary: "Give an app to a developer", auth: OPERATOR, params: AppParams, body: AppOwnerRequest, responses: { 200: AppOwner }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/v1/console/operator", summary: "The console's fleet view: devices by state, functions without a device, the ledger", auth: OPERATOR, responses: { 200: OperatorView }, errors: AUTH },
  { method: "get", path: "/v1/console/owner", summary: "A device owner's devices and credits (signed in with a device token)", auth: ["deviceToken"], responses: { 200: OwnerView }, errors: AUTH },
  { method: "post", path: "/v1/devices/join", summary: "A device joins with its nkey public key; the single-use join token the operator made is the body's `token`", auth: ["none"], body: JoinRequest, responses: { 201: JoinResponse }, errors: [400, 401, 403] },
  { method: "post", path: "/v1/devices/:id/credentials", summary: "A new fabric credential for the device's key", auth: ["deviceToken"], params: DeviceParams, responses: { 200: FabricCredential }, errors: [400, 401, 403] },
  { method: "get", path: "/v1/devices/:id/credits", summary: "A device's credits by day", auth: ["operatorToken", "deviceToken"], params: DeviceParams, query: CreditsQuery, responses: { 200: DeviceCredits }, errors: [400, ...AUTH, 503] },
  { method: "get", path: "/v1/devices/:id/networks", summary: "The networks the device is a member of", auth: ["deviceToken"], params: DeviceParams, responses: { 200: DeviceNetworksView }, errors: [400, 401, 403] },
  { method: "post", path: "/v1/devices/:id/networks", summary: "Redeem a network invite: the device joins the app's network", auth: ["deviceToken"], params: DeviceParams, body: DeviceNetworkJoinRequest, responses: { 201: DeviceNetworkJoinResponse }, errors: [400, 401, 403, 410] },
  { method: "delete", path: "/v1/devices/:id/networks/:app", summary: "The device leaves the app's network", auth: ["deviceToken"], params: DeviceNetworkParams, responses: { 204: "empty" }, errors: [400, 401, 403, 404] },
  { method: "post", path: "/v1/devices/:id/revoke", summary: "Revoke a device", auth: OPERATOR, params: DeviceParams, responses: { 200: RevokeResponse }, errors: [400, ...AUTH, 404] },
  { method: "get", path: "/metrics", summary: "Prometheus metrics of this platform process", auth: OPERATOR, responses: { 200: "prometheus" }, errors: AUTH },
  { method: "get", path: "/openapi.json", summary: "This document", auth: ["none"], responses: { 200: "any" }, errors: [] },
  ...(["get", "post", "put", "patch", "delete", "head", "options"] as const).map((method): RouteSpec => ({
    method,
    path: "/fn/:app/:fn/:path",
    summary: "Call a function (the path form, for local use; with HEARTH_APP_DOMAIN each app is served on <app>.<app-domain>/<fn>/... and this answers 308)",
    auth: ["none"],
    params: GatewayParams,
    body: "any",
    responses: { 200: "any" },
    errors: [308, 400, 404, 405, 413, 429, 502, 503, 504],
  })),
];

const ErrorEnvelope = z.strictObject({
  error: z.strictObject({
    code: z.enum(Object.keys(ERROR_CODES) as [string, ...string[]]),
    message: z.string(),
    requestId: z.string(),
  }),
});

function jsonSchema(schema: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12", io, unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

/** `/v1/apps/:app` → `/v1/apps/{app}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z]+)/g, "{$1}");
}

const SECURITY = {
  developerToken: { type: "http", scheme: "bearer", description: "A developer's token (hth_...), made by the operator: their own apps only" },
  operatorToken: { type: "http", scheme: "bearer", description: "The platform's HEARTH_TOKEN: operator routes only" },
  deviceToken: { type: "http", scheme: "bearer", description: "A device's token (hd_...), from hearth-agent join" },
};

function content(body: Body): Record<string, unknown> | undefined {
  if (body === "empty") return undefined;
  if (body === "prometheus") return { "text/plain; version=0.0.4": { schema: { type: "string" } } };
  if (body === "event-stream") return { "text/event-stream": { schema: { type: "string" } } };
  if (body === "any") return { "*/*": { schema: {} } };
  return { "application/json": { schema: jsonSchema(body, "output") } };
}

/** The whole document. */
export function openApiDocument(serverUrl?: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of ROUTES) {
    const parameters: unknown[] = [];
    for (const [name, schema] of Object.entries(route.params?.shape ?? {})) {
      parameters.push({ name, in: "path", required: true, schema: jsonSchema(schema as z.ZodType, "input") });
    }
    for (const [name, schema] of Object.entries(route.query?.shape ?? {})) {
      const s = schema as z.ZodType;
      parameters.push({ name, in: "query", required: !s.safeParse(undefined).success, schema: jsonSchema(s, "input") });
    }
    const responses: Record<string, unknown> = {};
    for (const [status, body] of Object.entries(route.responses)) {
      const c = content(body);
      responses[status] = { description: status === "204" ? "done" : "success", ...(c ? { content: c } : {}) };
    }
    if (route.path.endsWith("/logs")) {
      (responses["200"] as { content: Record<string, unknown> }).content["text/event-stream"] = { schema: { type: "string", description: "with follow=1: event: line (a LogEntry as data), event: error (the error envelope as data), : keep-alive comments" } };
    }
    for (const status of [...route.errors, 500]) {
      responses[String(status)] = { description: status === 500 ? "unexpected error (opaque)" : "error", content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorEnvelope" } } } };
    }
    const requestBody =
      route.body === undefined
        ? undefined
        : route.body === "bundle"
          ? { required: true, content: { "application/javascript": { schema: { type: "string", description: "the function's bundled ES module (hearth deploy makes it)" } } } }
          : route.body === "any"
            ? { content: { "*/*": { schema: {} } } }
            : { required: true, content: { "application/json": { schema: jsonSchema(route.body, "input") } } };
    const security = route.auth.includes("none") ? [] : route.auth.map((a) => ({ [a]: [] }));
    const path = (paths[openApiPath(route.path)] ??= {});
    path[route.method] = {
      summary: route.summary,
      operationId: `${route.method}${openApiPath(route.path).replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
      security,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Hearth platform API",
      version: "1",
      description: "Deploy and manage functions, read their logs, usage and stats; operator and device routes. Errors are always { error: { code, message, requestId } } (docs/errors.md). See docs/api.md.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    paths,
    components: { securitySchemes: SECURITY, schemas: { ErrorEnvelope: jsonSchema(ErrorEnvelope, "output") } },
  };
}
