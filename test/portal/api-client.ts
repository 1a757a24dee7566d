import { Agent, request } from 'undici';
import type { Exchange } from '../protocol/exchanges.js';

/** One answer as the browser sees it. */
export interface Answer {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * A browser of the portal's API for tests: keeps the session cookie the portal sets, and sends the
 * session's CSRF token on state-changing requests unless told not to.
 *
 * @example
 *   const owner = new PortalBrowser(portalUrl, operatorRoot);
 *   await owner.post('/api/v1/accounts', { email, password, name });
 */
export class PortalBrowser {
  /** Every request and answer of every browser (bodies over 1 MiB left out), for the OpenAPI check. */
  static readonly exchanges: Exchange[] = [];
  cookie: string | undefined;
  csrfToken: string | undefined;
  private readonly agent: Agent;

  constructor(
    readonly baseUrl: string,
    ca: string,
  ) {
    this.agent = new Agent({ connect: { ca } });
  }

  get(path: string): Promise<Answer> {
    return this.send('GET', path);
  }

  post(path: string, body: unknown, options: { csrf?: boolean } = {}): Promise<Answer> {
    return this.send('POST', path, JSON.stringify(body), 'application/json', options.csrf);
  }

  delete(path: string, options: { csrf?: boolean } = {}): Promise<Answer> {
    return this.send('DELETE', path, undefined, undefined, options.csrf);
  }

  upload(
    path: string,
    body: string | Buffer,
    type: string,
    options: { csrf?: boolean } = {},
  ): Promise<Answer> {
    return this.send('POST', path, body, type, options.csrf);
  }

  /** Signs up (owner) or in and keeps the session. */
  async signIn(path: '/api/v1/accounts' | '/api/v1/session', body: Record<string, string>): Promise<Answer> {
    const answer = await this.post(path, body);
    if (answer.statusCode === 200) this.csrfToken = answer.json<{ csrfToken: string }>().csrfToken;
    return answer;
  }

  /** The raw event stream (GET /api/v1/stream) and what it has received so far. */
  async stream(): Promise<{
    received: () => string;
    until: (pattern: RegExp) => Promise<void>;
    close: () => void;
  }> {
    const controller = new AbortController();
    const response = await request(`${this.baseUrl}/api/v1/stream`, {
      method: 'GET',
      dispatcher: this.agent,
      headers: this.cookie ? { cookie: this.cookie } : {},
      signal: controller.signal,
    });
    if (response.statusCode !== 200)
      throw new Error(`stream: HTTP ${response.statusCode} ${await response.body.text()}`);
    let text = '';
    const waiters: { pattern: RegExp; resolve: () => void }[] = [];
    response.body.setEncoding('utf8');
    response.body.on('data', (chunk: string) => {
      text += chunk;
      for (const w of [...waiters]) {
        if (w.pattern.test(text)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
    response.body.on('error', () => undefined);
    return {
      received: () => text,
      until: (pattern) =>
        pattern.test(text)
          ? Promise.resolve()
          : new Promise<void>((resolve) => waiters.push({ pattern, resolve })),
      close: () => controller.abort(),
    };
  }

  async send(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body?: string | Buffer,
    type?: string,
    csrf = true,
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (type) headers['content-type'] = type;
    if (this.cookie) headers.cookie = this.cookie;
    if (csrf && method !== 'GET' && this.csrfToken) headers['x-csrf-token'] = this.csrfToken;
    const response = await request(`${this.baseUrl}${path}`, {
      method,
      dispatcher: this.agent,
      headers,
      body,
    });
    const text = await response.body.text();
    PortalBrowser.exchanges.push({
      url: `${this.baseUrl}${path}`,
      method,
      body: body !== undefined && body.length <= 1024 * 1024 ? body : undefined,
      contentType: type ?? '',
      statusCode: response.statusCode,
      headers: response.headers,
      text,
    });
    const setCookie = response.headers['set-cookie'];
    for (const line of Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : []) {
      const [pair] = line.split(';');
      const value = pair!.slice(pair!.indexOf('=') + 1);
      this.cookie = value ? pair : undefined;
    }
    return { statusCode: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) };
  }

  close(): Promise<void> {
    return this.agent.destroy();
  }
}
