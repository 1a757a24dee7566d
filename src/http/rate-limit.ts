import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BoundedCache } from '../crypto/bounded-cache.js';
import { SimcredError, type ErrorCode } from '../errors/index.js';
import type { RouteSpec } from '../protocol/route.js';
import { isDatabaseOutage } from '../storage/database.js';
import type { RateLimitCount, RateLimitStore } from '../storage/rate-limits.js';
import { systemClock, type Clock } from '../time/clock.js';

/** At most `requests` in any `windowSeconds` (a sliding window). */
export interface WindowLimit {
  requests: number;
  windowSeconds: number;
}

/**
 * The abuse limits of a role's device-facing routes (config `abuse`, docs/abuse-limits.md). Every
 * limit counts per route: a device's lookup does not use up its session's allowance.
 */
export interface AbuseLimitSettings {
  /** false: no request is counted or refused (the size and time bounds stay). */
  enabled: boolean;
  /** Per client address: high, since a carrier-grade NAT puts a whole fleet behind one. */
  perAddress: WindowLimit;
  /** Per DSIM_ID / PIMSI / IMSI / session, whatever address it comes from: tight. */
  perIdentity: WindowLimit;
  /** Per identity from one address: lower, so one stranger cannot use up a device's allowance alone. */
  perIdentityAndAddress: WindowLimit;
  /** New AKA challenges and resyncs (each advances SQN, replaces the pending challenge) per PIMSI / IMSI. */
  akaChallenges: WindowLimit;
  /** The same from one address. */
  akaChallengesPerAddress: WindowLimit;
  /** Keys refused until their window frees them, remembered in this process (no database round trip). */
  denyCacheEntries: number;
}

/** Which limit refused a request; each answers its own code. */
export type LimitKind = 'address' | 'identity' | 'identity-address' | 'aka' | 'aka-address';

const CODE_OF: Record<LimitKind, ErrorCode> = {
  address: 'SIMCRED_ADDRESS_RATE_LIMITED',
  identity: 'SIMCRED_IDENTITY_RATE_LIMITED',
  'identity-address': 'SIMCRED_IDENTITY_RATE_LIMITED',
  aka: 'SIMCRED_AKA_THROTTLED',
  'aka-address': 'SIMCRED_AKA_THROTTLED',
};

/** When several limits refuse at once, the answer names the first of these. */
const PRECEDENCE: LimitKind[] = ['address', 'aka-address', 'aka', 'identity-address', 'identity'];

/** One counter a request is checked against. */
export interface LimitCheck {
  kind: LimitKind;
  key: string;
  limit: WindowLimit;
  /** For the message: what was counted ("client address 203.0.113.7", "PIMSI 001010000000001"). */
  subject: string;
}

/** A refusal: the limit, and the seconds until a request under it is let through again. */
export interface Refusal {
  check: LimitCheck;
  retryAfterSeconds: number;
}

/**
 * A sliding-window estimate (as Cloudflare's): the current window's hits plus the previous window's
 * weighted by how much of it still lies inside the sliding window. `count` already holds this hit.
 * Returns 0 when the hit is within the limit, else how long until one more would be (ms).
 *
 * @example
 *   slidingWindowWait({ windowIndex: 10, hits: 6, previousHits: 0 }, 5, 60_000, 630_000); // 30_000 + …
 */
export function slidingWindowWait(
  count: RateLimitCount,
  limit: number,
  windowMs: number,
  nowMs: number,
): number {
  const start = count.windowIndex * windowMs;
  const elapsed = Math.min(1, Math.max(0, (nowMs - start) / windowMs));
  const estimate = count.previousHits * (1 - elapsed) + count.hits;
  // The tolerance keeps a float rounding (6 × (1 − 1/3) = 4.000…1) from refusing a hit that fits.
  if (estimate <= limit + 1e-9) return 0;
  let freeAt: number;
  if (count.hits + 1 <= limit && count.previousHits > 0) {
    // Still in this window, once enough of the previous one has slid out.
    freeAt = start + (1 - (limit - count.hits - 1) / count.previousHits) * windowMs;
  } else {
    // In the next window, where this window's hits are the previous ones.
    freeAt = start + windowMs + Math.max(0, 1 - (limit - 1) / Math.max(1, count.hits)) * windowMs;
  }
  return Math.max(0, freeAt - nowMs);
}

/**
 * Checks requests against counters shared by every instance of a role (RateLimitStore, one upsert
 * per request for all its counters). A key once refused is refused from a local deny cache until its
 * window frees it, so a flood costs no database write per request; another instance learns the same
 * with one round trip of its own.
 *
 * @example
 *   const limiter = new RequestLimiter({ store, denyCacheEntries: 100_000 });
 *   const refusal = await limiter.check([{ kind: 'address', key: 'address|phlr.challenge|10.0.0.1', limit, subject }]);
 */
export class RequestLimiter {
  private readonly denied: BoundedCache<number>;
  private readonly clock: Clock;

  constructor(
    private readonly options: {
      store: RateLimitStore;
      denyCacheEntries: number;
      clock?: Clock;
      /** Told when the counters cannot be reached (the request is let through: fail open). */
      log?: Logger;
    },
  ) {
    this.denied = new BoundedCache<number>(Math.max(1, options.denyCacheEntries));
    this.clock = options.clock ?? systemClock;
  }

  /** A refusal from the deny cache alone (no database), or undefined. */
  refusedLocally(checks: readonly LimitCheck[]): Refusal | undefined {
    const now = this.clock().getTime();
    const refusals: Refusal[] = [];
    for (const check of checks) {
      const until = this.denied.get(check.key);
      if (until === undefined) continue;
      // An expired entry is overwritten at the key's next refusal, or evicted.
      if (until <= now) continue;
      refusals.push({ check, retryAfterSeconds: seconds(until - now) });
    }
    return first(refusals);
  }

  /** Counts the request under every check and answers the refusal, if any. */
  async check(checks: readonly LimitCheck[]): Promise<Refusal | undefined> {
    const local = this.refusedLocally(checks);
    if (local) return local;
    const now = this.clock().getTime();
    let counts: Map<string, RateLimitCount>;
    try {
      counts = await this.options.store.hit(
        checks.map((c) => ({ key: c.key, windowMs: c.limit.windowSeconds * 1000 })),
        now,
      );
    } catch (err) {
      // The counters are a brake, not a gate: when their database is away the route's own work meets
      // the same outage (and answers 503), or needs none (the stateless lookup challenge).
      if (!isDatabaseOutage(err)) throw err;
      this.options.log?.warn({ err }, 'rate-limit counters unavailable; request not counted');
      return undefined;
    }
    const refusals: Refusal[] = [];
    for (const check of checks) {
      const count = counts.get(check.key);
      if (!count) continue;
      const waitMs = slidingWindowWait(count, check.limit.requests, check.limit.windowSeconds * 1000, now);
      if (waitMs <= 0) continue;
      this.denied.set(check.key, now + waitMs);
      refusals.push({ check, retryAfterSeconds: seconds(waitMs) });
    }
    return first(refusals);
  }
}

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function first(refusals: Refusal[]): Refusal | undefined {
  if (refusals.length === 0) return undefined;
  const rank = (r: Refusal) => PRECEDENCE.indexOf(r.check.kind);
  const chosen = [...refusals].sort((a, b) => rank(a) - rank(b))[0]!;
  // Retry-After: when every refusing limit lets the request through.
  return { check: chosen.check, retryAfterSeconds: Math.max(...refusals.map((r) => r.retryAfterSeconds)) };
}

/** The answer to a refused request: 429, Retry-After, the code of the limit and which limit in the message. */
export function refusalError(refusal: Refusal): SimcredError {
  const { check, retryAfterSeconds } = refusal;
  const { requests, windowSeconds } = check.limit;
  const what =
    check.kind === 'aka' || check.kind === 'aka-address'
      ? `new AKA challenges for ${check.subject}`
      : `requests from ${check.subject}`;
  return new SimcredError(
    CODE_OF[check.kind],
    `${check.kind} limit: more than ${requests} ${what} in ${windowSeconds} s; retry after ${retryAfterSeconds} s`,
    { retryAfter: retryAfterSeconds },
  );
}

/** The identity a device route's request names, and how the docs call it. */
const IDENTITY_FIELDS = [
  { field: 'dsimId', name: 'DSIM_ID' },
  { field: 'pimsi', name: 'PIMSI' },
  { field: 'imsi', name: 'IMSI' },
] as const;
/** Identities are short tokens; anything else is left to the route's validation (a 400). */
const IDENTITY = /^[A-Za-z0-9-]{1,64}$/;

/**
 * The DSIM_ID, PIMSI or IMSI in the body, or the session of a proof (its path parameter), read before
 * validation; undefined when the request names none that could be valid.
 */
export function requestIdentity(request: FastifyRequest): { name: string; value: string } | undefined {
  const body = request.body;
  if (body !== null && typeof body === 'object' && !Buffer.isBuffer(body)) {
    for (const { field, name } of IDENTITY_FIELDS) {
      const value = (body as Record<string, unknown>)[field];
      if (typeof value === 'string' && IDENTITY.test(value)) return { name, value };
    }
  }
  const sessionId = (request.params as Record<string, unknown> | undefined)?.sessionId;
  if (typeof sessionId === 'string' && IDENTITY.test(sessionId)) return { name: 'session', value: sessionId };
  return undefined;
}

/**
 * The client address a limit counts: the socket's peer (a TCP load balancer in front would make every
 * device one address: docs/abuse-limits.md). An IPv4-mapped IPv6 address counts as its IPv4 one.
 */
export function clientAddress(request: FastifyRequest): string {
  const address = request.socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function deviceRoute(request: FastifyRequest): RouteSpec | undefined {
  const route = request.routeOptions.config?.route;
  return route?.caller.kind === 'device' ? route : undefined;
}

function addressCheck(settings: AbuseLimitSettings, route: RouteSpec, address: string): LimitCheck {
  return {
    kind: 'address',
    key: `address|${route.id}|${address}`,
    limit: settings.perAddress,
    subject: `client address ${address}`,
  };
}

/** Every counter a device route's request is checked against, address first. */
export function limitChecks(
  settings: AbuseLimitSettings,
  route: RouteSpec,
  address: string,
  identity: { name: string; value: string } | undefined,
): LimitCheck[] {
  const checks = [addressCheck(settings, route, address)];
  if (!identity) return checks;
  const subject = `${identity.name} ${identity.value}`;
  checks.push(
    {
      kind: 'identity',
      key: `identity|${route.id}|${identity.value}`,
      limit: settings.perIdentity,
      subject,
    },
    {
      kind: 'identity-address',
      key: `identity-address|${route.id}|${identity.value}|${address}`,
      limit: settings.perIdentityAndAddress,
      subject: `${subject} from ${address}`,
    },
  );
  if (route.issuesAkaChallenge) {
    // Challenge and resync share one allowance: both advance SQN and replace the pending challenge.
    checks.push(
      { kind: 'aka', key: `aka|${route.role}|${identity.value}`, limit: settings.akaChallenges, subject },
      {
        kind: 'aka-address',
        key: `aka-address|${route.role}|${identity.value}|${address}`,
        limit: settings.akaChallengesPerAddress,
        subject: `${subject} from ${address}`,
      },
    );
  }
  return checks;
}

/**
 * Rate limits on every device route of `app` (caller: device): before the body is read, a client
 * address refused in this process is answered from the deny cache; once the body is parsed, the
 * request is counted per address, per identity (and identity from this address) and, on the AKA
 * challenge and resync routes, per subscriber's new challenges, all in one statement. A request
 * refused before that (its body) is counted against its address once answered. Call before the
 * routes are mounted.
 *
 * @example
 *   limitDeviceRoutes(app, { settings, limiter: new RequestLimiter({ store, denyCacheEntries: 100_000 }) });
 */
export function limitDeviceRoutes(
  app: FastifyInstance,
  options: { settings: AbuseLimitSettings; limiter: RequestLimiter },
): void {
  const { settings, limiter } = options;
  if (!settings.enabled) return;
  app.addHook('onRequest', async (request) => {
    const route = deviceRoute(request);
    if (!route) return;
    const refusal = limiter.refusedLocally([addressCheck(settings, route, clientAddress(request))]);
    if (refusal) throw refusalError(refusal);
  });
  const counted = new WeakSet<FastifyRequest>();
  app.addHook('preHandler', async (request) => {
    const route = deviceRoute(request);
    if (!route) return;
    counted.add(request);
    const checks = limitChecks(settings, route, clientAddress(request), requestIdentity(request));
    const refusal = await limiter.check(checks);
    if (refusal) throw refusalError(refusal);
  });
  // A request refused before preHandler (a body that does not parse, too large, of the wrong type)
  // still counts against its address, after its answer is sent: a flood of malformed bodies is
  // limited like any other.
  app.addHook('onResponse', (request, reply, done) => {
    const route = deviceRoute(request);
    if (route && !counted.has(request) && reply.statusCode !== 429) {
      limiter.check([addressCheck(settings, route, clientAddress(request))]).catch((err: unknown) => {
        request.log.warn({ err }, 'rate-limit count failed');
      });
    }
    done();
  });
}

/** Bounds on what one client may hold of a server (config `abuse`; docs/abuse-limits.md). */
export interface ConnectionLimits {
  /** Open TCP connections per client address; one more is closed at once. 0: no cap. */
  connectionsPerAddress: number;
}

/**
 * Closes a new connection at once when its address already holds `connectionsPerAddress` (before any
 * TLS handshake: the 'connection' event is the TCP socket's). Returns how many each address holds.
 *
 * @example
 *   capConnections(app.server, { connectionsPerAddress: 256 });
 */
export function capConnections(
  server: { on(event: 'connection', listener: (socket: Socket) => void): unknown },
  limits: ConnectionLimits,
  onRefused?: (address: string) => void,
): Map<string, number> {
  const open = new Map<string, number>();
  if (limits.connectionsPerAddress <= 0) return open;
  server.on('connection', (socket) => {
    const raw = socket.remoteAddress ?? 'unknown';
    const address = raw.startsWith('::ffff:') ? raw.slice(7) : raw;
    const held = open.get(address) ?? 0;
    if (held >= limits.connectionsPerAddress) {
      onRefused?.(address);
      socket.destroy();
      return;
    }
    open.set(address, held + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
  return open;
}
