import type { z } from 'zod';
import type * as portal from '../../src/protocol/portal.js';
import type { BodyOf, ResponseOf } from '../../src/protocol/route.js';
import { ROUTES } from './routes.js';

/*
 * The portal's API as the browser sees it. Every type comes from the contract in
 * src/protocol/portal.ts (type-only imports: zod itself is not bundled); the server validates every
 * request with the same schemas, so the browser holds no rule of its own.
 */

export type Session = z.infer<typeof portal.Session>;
export type Account = z.infer<typeof portal.Account>;
export type Plan = z.infer<typeof portal.Plan>;
export type Contract = z.infer<typeof portal.Contract>;
export type Device = z.infer<typeof portal.Device>;
export type DeviceState = z.infer<typeof portal.PortalDeviceState>;
export type StateTotals = z.infer<typeof portal.StateTotals>;
export type Upload = z.infer<typeof portal.Upload>;
export type Rejection = z.infer<typeof portal.Rejection>;
export type Funnel = z.infer<typeof portal.Funnel>;
export type TimelineEvent = z.infer<typeof portal.TimelineEvent>;
export type Page<T> = { items: T[]; next: string | null };

export type SignUpBody = BodyOf<typeof portal.signUp>;
export type LogInBody = BodyOf<typeof portal.logIn>;
export type CreateContractBody = BodyOf<typeof portal.createContract>;

/** Every state in the order a device goes through them, then the ends that are not success. */
export const DEVICE_STATES: readonly DeviceState[] = [
  'pending',
  'registered',
  'authenticated',
  'referred',
  'delivered',
  'completed',
  'attached',
  'failed',
  'expired',
  'revoked',
  'rejected',
  'suspended',
  'active',
  'deleted',
  'reprovisioned',
  'transferring',
  'transferred',
];

/** States in which a device can still be cancelled: its credentials have not been delivered. */
export const CANCELLABLE: ReadonlySet<DeviceState> = new Set([
  'pending',
  'registered',
  'authenticated',
  'referred',
]);

/** An error answer of the portal: its stable SIMCRED_ code, its message, and the fields it names. */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  /** "body.billing.country: must be …" → { 'billing.country': 'must be …' }. */
  readonly fields: Record<string, string>;
  /** The parts of the message that name no field. */
  readonly general: string[];

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.fields = {};
    this.general = [];
    // The server joins up to three schema issues with "; ", each "<where>.<path>: <message>".
    for (const part of message.split('; ')) {
      const m = /^(body|query|params)\.([\w.]+): (.+)$/s.exec(part);
      if (m?.[2] && m[3]) this.fields[m[2]] ??= m[3];
      else this.general.push(part);
    }
  }
}

type RouteKey = keyof typeof ROUTES;
type Query = Record<string, string | number | undefined>;

/** Fills in :params and the query string of a declared route. */
export function routeUrl(name: RouteKey, params: Record<string, string> = {}, query: Query = {}): string {
  const path = ROUTES[name].path.replace(/:(\w+)/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`missing route parameter ${key}`);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') search.set(k, String(v));
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

/**
 * The portal client: same-origin fetches with the session cookie, the CSRF token on every
 * state-changing request, and error answers turned into {@link ApiError}.
 *
 * @example
 *   const api = new PortalApi();
 *   const session = await api.logIn({ email, password });
 *   const { items } = await api.listContracts({ q: 'DSIM0000000000000001' });
 */
export class PortalApi {
  private csrfToken: string | null = null;
  /** Called when the portal answers that the session is gone (expired, logged out elsewhere). */
  onSessionLost: () => void = () => {};

  private async call<T>(
    name: RouteKey,
    options: {
      params?: Record<string, string>;
      query?: Query;
      json?: unknown;
      file?: { body: Blob; type: string };
    } = {},
  ): Promise<T> {
    const route = ROUTES[name];
    const headers: Record<string, string> = { accept: 'application/json' };
    let body: BodyInit | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.file) {
      headers['content-type'] = options.file.type;
      body = options.file.body;
    }
    if (route.method !== 'GET' && this.csrfToken) headers['x-csrf-token'] = this.csrfToken;
    let response: Response;
    try {
      response = await fetch(routeUrl(name, options.params, options.query), {
        method: route.method,
        headers,
        body,
        credentials: 'same-origin',
      });
    } catch {
      throw new ApiError(0, 'NETWORK', 'The portal cannot be reached. Check your connection and try again.');
    }
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // A non-JSON answer (a proxy's error page) is reported below by its status.
    }
    if (!response.ok) {
      const err = parsed as { code?: unknown; message?: unknown } | undefined;
      const code = typeof err?.code === 'string' ? err.code : `HTTP_${response.status}`;
      if (code === 'SIMCRED_UNAUTHENTICATED' && name !== 'currentSession' && name !== 'logOut') {
        this.csrfToken = null;
        this.onSessionLost();
      }
      throw new ApiError(
        response.status,
        code,
        typeof err?.message === 'string' ? err.message : `The portal answered ${response.status}.`,
      );
    }
    return parsed as T;
  }

  private remember(session: Session): Session {
    this.csrfToken = session.csrfToken;
    return session;
  }

  async signUp(body: SignUpBody): Promise<Session> {
    return this.remember(await this.call<ResponseOf<typeof portal.signUp>>('signUp', { json: body }));
  }
  async logIn(body: LogInBody): Promise<Session> {
    return this.remember(await this.call<ResponseOf<typeof portal.logIn>>('logIn', { json: body }));
  }
  /** The signed-in session after a reload, or null when there is none. */
  async currentSession(): Promise<Session | null> {
    try {
      return this.remember(await this.call<ResponseOf<typeof portal.currentSession>>('currentSession'));
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return null;
      throw err;
    }
  }
  async logOut(): Promise<void> {
    await this.call<ResponseOf<typeof portal.logOut>>('logOut');
    this.csrfToken = null;
  }
  listPlans(): Promise<ResponseOf<typeof portal.listPlans>> {
    return this.call('listPlans');
  }
  createContract(body: CreateContractBody): Promise<Contract> {
    return this.call('createContract', { json: body });
  }
  retryPayment(contractId: string, paymentReference: string): Promise<Contract> {
    return this.call('retryPayment', { params: { contractId }, json: { paymentReference } });
  }
  listContracts(query: { q?: string; after?: string; limit?: number } = {}): Promise<Page<Contract>> {
    return this.call('listContracts', { query });
  }
  getContract(contractId: string): Promise<Contract> {
    return this.call('getContract', { params: { contractId } });
  }
  listDevices(
    contractId: string,
    query: { after?: string; limit?: number; state?: DeviceState } = {},
  ): Promise<Page<Device>> {
    return this.call('listDevices', { params: { contractId }, query });
  }
  addDevices(contractId: string, dsimIds: string[]): Promise<ResponseOf<typeof portal.addDevices>> {
    return this.call('addDevices', { params: { contractId }, json: { dsimIds } });
  }
  /** Sends the file as it is (the browser streams it); CSV unless its name ends in .ndjson or .jsonl. */
  uploadDevices(contractId: string, file: File): Promise<Upload> {
    const ndjson = /\.(nd)?jsonl?$/i.test(file.name) || file.type === 'application/x-ndjson';
    return this.call('uploadDevices', {
      params: { contractId },
      query: { fileName: file.name.slice(0, 200) },
      file: { body: file, type: ndjson ? 'application/x-ndjson' : 'text/csv' },
    });
  }
  listUploads(query: { after?: string; limit?: number } = {}): Promise<Page<Upload>> {
    return this.call('listUploads', { query });
  }
  cancelDevice(contractId: string, dsimId: string): Promise<Device> {
    return this.call('cancelDevice', { params: { contractId, dsimId } });
  }
  fleetFunnel(): Promise<Funnel> {
    return this.call('fleetFunnel');
  }
  deviceTimeline(dsimId: string): Promise<ResponseOf<typeof portal.deviceTimeline>> {
    return this.call('deviceTimeline', { params: { dsimId } });
  }
}
