import { PeerClient } from '../http/index.js';
import * as portal from '../protocol/portal.js';
import type { BodyOf, ResponseOf, RouteSpec } from '../protocol/route.js';

/**
 * A signed-in caller of the portal's API, as the browser front end is: the session cookie, and the
 * session's CSRF token on state-changing requests. `simcred demo` registers its fleet through it, as
 * the demo owner.
 *
 * @example
 *   const owner = new PortalClient(portalUrl, operatorRoot);
 *   await owner.signIn({ email, password, name });
 *   const contract = await owner.call(portal.createContract, { body: { planId, billing, paymentReference } });
 */
export class PortalClient {
  private readonly client: PeerClient;
  private cookie: string | undefined;
  private csrfToken: string | undefined;

  constructor(
    readonly baseUrl: string,
    operatorRoot: string,
  ) {
    // An upload of a large fleet is one request: give it time.
    this.client = new PeerClient({ tls: { ca: [operatorRoot] }, timeoutMs: 600_000, connections: 2 });
  }

  /** Signs in, or first signs up as an owner when the account does not exist yet. */
  async signIn(account: { email: string; password: string; name?: string }): Promise<void> {
    try {
      await this.call(portal.logIn, { body: { email: account.email, password: account.password } });
    } catch (err) {
      if (account.name === undefined || (err as { code?: string }).code !== 'SIMCRED_LOGIN_FAILED') throw err;
      await this.call(portal.signUp, {
        body: { email: account.email, password: account.password, name: account.name },
      });
    }
  }

  /** Calls a JSON route of the portal's API; its errors come back as SimcredErrors. */
  async call<S extends RouteSpec>(
    spec: S,
    input: { params?: Record<string, string>; body?: BodyOf<S>; query?: Record<string, string> } = {},
  ): Promise<ResponseOf<S>> {
    const body = input.body === undefined ? undefined : JSON.stringify(input.body);
    return this.request(spec, input.params ?? {}, input.query, body, 'application/json');
  }

  /** Uploads a device list (NDJSON or CSV lines, streamed) to a contract; answers the finished upload. */
  upload(
    contractId: string,
    lines: AsyncIterable<string> | Iterable<string>,
    fileName: string,
    contentType: 'application/x-ndjson' | 'text/csv' = 'application/x-ndjson',
  ): Promise<ResponseOf<typeof portal.uploadDevices>> {
    const body = (async function* () {
      let buffer = '';
      for await (const line of lines) {
        buffer += `${line}\n`;
        if (buffer.length > 64 * 1024) {
          yield Buffer.from(buffer);
          buffer = '';
        }
      }
      if (buffer) yield Buffer.from(buffer);
    })();
    return this.request(portal.uploadDevices, { contractId }, { fileName }, body, contentType);
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private async request<S extends RouteSpec>(
    spec: S,
    params: Record<string, string>,
    query: Record<string, string> | undefined,
    body: string | AsyncIterable<Uint8Array> | undefined,
    contentType: string,
  ): Promise<ResponseOf<S>> {
    const path = spec.path.replace(/:(\w+)/g, (_, key: string) => encodeURIComponent(params[key] ?? ''));
    const search = query ? `?${new URLSearchParams(query).toString()}` : '';
    const headers: Record<string, string> = {};
    if (this.cookie) headers.cookie = this.cookie;
    if (spec.method !== 'GET' && this.csrfToken) headers['x-csrf-token'] = this.csrfToken;
    const answer = await this.client.send(
      `${this.baseUrl}${path}${search}`,
      spec.method,
      body,
      contentType,
      undefined,
      headers,
    );
    const setCookie = answer.headers['set-cookie'];
    for (const line of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const pair = line.split(';')[0]!;
      this.cookie = pair.slice(pair.indexOf('=') + 1) ? pair : undefined;
    }
    const result = this.client.decode(spec, answer.statusCode, answer.headers, answer.text) as ResponseOf<S>;
    const token = (result as { csrfToken?: unknown }).csrfToken;
    if (typeof token === 'string') this.csrfToken = token;
    return result;
  }
}
