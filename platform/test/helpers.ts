/** Helpers for the platform's in-process tests. */
import { CreateDeveloperResponse } from "@hearth/protocol";

/** A developer made through the admin API, with the headers its token goes in. */
export interface TestDeveloper {
  id: string;
  name: string;
  token: string;
  tokenId: string;
  auth: { authorization: string };
}

type Requester = { request(path: string, init?: RequestInit): Response | Promise<Response> };

/**
 * Creates a developer with `POST /v1/developers` (the operator's token) and
 * returns their first token: what every test that deploys or reads uses,
 * since the operator's token reaches operator routes only.
 */
export async function createDeveloper(app: Requester, operatorToken: string, name: string): Promise<TestDeveloper> {
  const res = await app.request("/v1/developers", {
    method: "POST",
    headers: { authorization: `Bearer ${operatorToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 201) throw new Error(`creating developer ${name} answered ${res.status}: ${await res.text()}`);
  const created = CreateDeveloperResponse.parse(await res.json());
  const token = created.token.value;
  return { id: created.developer.id, name, token, tokenId: created.token.id, auth: { authorization: `Bearer ${token}` } };
}
