import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { SimcredError } from '../errors/index.js';
import { parseInput } from '../http/index.js';
import * as portal from '../protocol/portal.js';
import type { RouteSpec } from '../protocol/route.js';
import { csrfMatches, type AccountService, type PortalAccount, type SignedIn } from './accounts.js';
import type { ContractService } from './contracts.js';
import { readDeviceList, type DeviceListFormat } from './device-list.js';
import type { EventHub, PortalEvent } from './events.js';
import { mountFrontEnd } from './front-end.js';

export const SESSION_COOKIE = 'simcred_session';

/**
 * Sent with every answer (the error contract's and the front end's too): no inline script or style,
 * no framing, no referrer leaking contract ids.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
};

export interface PortalApiOptions {
  accounts: AccountService;
  contracts: ContractService;
  hub: EventHub;
  sessionTtlSeconds: number;
  uploadLimitBytes: number;
  /** The built front end (web/dist); a short page says it is not built when missing. */
  frontEndDir: string;
}

interface PortalInput<S extends RouteSpec> {
  body: z.infer<NonNullable<S['body']>>;
  params: z.infer<NonNullable<S['params']>>;
  query: z.infer<NonNullable<S['query']>>;
  /** The signed-in account (account routes only). */
  session: SignedIn;
  request: FastifyRequest;
  reply: FastifyReply;
}

/**
 * Mounts one portal route: the session check (cookie, account kind, CSRF token on state changes)
 * before anything is read, then path, query and body validated as mountRoute validates them
 * (`parseInput`); only the caller check differs.
 */
function mountPortalRoute<S extends RouteSpec>(
  app: FastifyInstance,
  spec: S,
  accounts: AccountService,
  handler: (input: PortalInput<S>) => Promise<z.infer<S['response']>>,
): void {
  app.route({
    method: spec.method,
    url: spec.path,
    config: { route: spec },
    handler: async (request, reply) => {
      const session =
        spec.caller.kind === 'account' ? await requireSession(request, spec, accounts) : undefined;
      return handler({ ...parseInput(spec, request), session, request, reply } as PortalInput<S>);
    },
  });
}

/** The caller's session, of an allowed kind, with the CSRF token on anything but a GET. */
async function requireSession(
  request: FastifyRequest,
  spec: RouteSpec,
  accounts: AccountService,
): Promise<SignedIn> {
  const session = await accounts.session(cookie(request, SESSION_COOKIE));
  if (!session) throw new SimcredError('SIMCRED_UNAUTHENTICATED', 'sign in first (no valid session)');
  if (spec.caller.kind === 'account' && !spec.caller.accounts.includes(session.account.kind)) {
    throw new SimcredError(
      'SIMCRED_FORBIDDEN_ACCOUNT',
      `${spec.caller.accounts.join(' or ')} accounts only; this is an ${session.account.kind} account`,
    );
  }
  if (request.method !== 'GET' && !csrfMatches(request.headers['x-csrf-token'], session.csrfToken)) {
    throw new SimcredError('SIMCRED_CSRF_INVALID', "x-csrf-token: missing or not this session's token");
  }
  return session;
}

/** One cookie of the request (parsed by hand: one name, no attributes to read). */
export function cookie(request: FastifyRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}

function setSessionCookie(reply: FastifyReply, value: string, maxAge: number): void {
  reply.header(
    'set-cookie',
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAge}`,
  );
}

function sessionBody(session: SignedIn): z.infer<typeof portal.Session> {
  return { account: session.account, csrfToken: session.csrfToken };
}

/**
 * The portal's API (src/protocol/portal.ts), its event stream and the front end.
 *
 * @example
 *   mountPortalApi(app, { accounts, contracts, hub, sessionTtlSeconds, uploadLimitBytes, frontEndDir });
 */
export function mountPortalApi(app: FastifyInstance, o: PortalApiOptions): void {
  app.addHook('onRequest', async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
  });
  // Device files reach the handler as the request stream itself: never buffered whole.
  app.addContentTypeParser(['text/csv', 'application/x-ndjson'], (_request, payload, done) =>
    done(null, payload),
  );

  const { accounts, contracts } = o;
  const owner = (session: SignedIn): PortalAccount => session.account;

  mountPortalRoute(app, portal.signUp, accounts, async ({ body, request, reply }) => {
    const session = await accounts.signUp(body, request.ip);
    setSessionCookie(reply, session.sessionId, o.sessionTtlSeconds);
    return sessionBody(session);
  });
  mountPortalRoute(app, portal.logIn, accounts, async ({ body, request, reply }) => {
    const session = await accounts.logIn(body, request.ip);
    setSessionCookie(reply, session.sessionId, o.sessionTtlSeconds);
    return sessionBody(session);
  });
  mountPortalRoute(app, portal.currentSession, accounts, async ({ session }) => sessionBody(session));
  mountPortalRoute(app, portal.logOut, accounts, async ({ session, reply }) => {
    await accounts.logOut(session.sessionId);
    setSessionCookie(reply, '', 0);
    return { ok: true as const };
  });
  mountPortalRoute(app, portal.listPlans, accounts, async () => ({ plans: contracts.plans() }));
  mountPortalRoute(app, portal.createContract, accounts, ({ session, body }) =>
    contracts.createContract(owner(session), body),
  );
  mountPortalRoute(app, portal.retryPayment, accounts, ({ session, params, body }) =>
    contracts.retryPayment(owner(session), params.contractId, body.paymentReference),
  );
  mountPortalRoute(app, portal.listContracts, accounts, ({ session, query }) =>
    contracts.listContracts(session.account, query as Parameters<ContractService['listContracts']>[1]),
  );
  mountPortalRoute(app, portal.getContract, accounts, ({ session, params }) =>
    contracts.getContract(session.account, params.contractId),
  );
  mountPortalRoute(app, portal.listDevices, accounts, ({ session, params, query }) =>
    contracts.listDevices(
      session.account,
      params.contractId,
      query as Parameters<ContractService['listDevices']>[2],
    ),
  );
  mountPortalRoute(app, portal.addDevices, accounts, ({ session, params, body }) =>
    contracts.addDevices(owner(session), params.contractId, body.dsimIds),
  );
  mountPortalRoute(app, portal.uploadDevices, accounts, async ({ session, params, query, request }) => {
    const format = deviceListFormat(request);
    const body = request.body as Readable;
    const declared = Number(request.headers['content-length']);
    try {
      if (declared > o.uploadLimitBytes) throw tooLarge(o.uploadLimitBytes);
      return await contracts.upload(
        owner(session),
        params.contractId,
        readDeviceList(limited(body, o.uploadLimitBytes), format),
        (query as { fileName?: string }).fileName ?? null,
      );
    } finally {
      // An answer before the whole file was read (too large, unreadable, a declined payment): the rest
      // is read and dropped, so the client finishes sending and reads the answer.
      body.resume();
    }
  });
  mountPortalRoute(app, portal.listUploads, accounts, ({ session, query }) =>
    contracts.listUploads(session.account, query as Parameters<ContractService['listUploads']>[1]),
  );
  mountPortalRoute(app, portal.cancelDevice, accounts, ({ session, params }) =>
    contracts.cancelDevice(session.account, params.contractId, params.dsimId),
  );
  mountPortalRoute(app, portal.fleetFunnel, accounts, () => contracts.funnel());
  mountPortalRoute(app, portal.deviceTimeline, accounts, ({ params }) =>
    contracts.deviceTimeline(params.dsimId),
  );
  mountEventStream(app, o);
  mountFrontEnd(app, o.frontEndDir, SECURITY_HEADERS);
}

function deviceListFormat(request: FastifyRequest): DeviceListFormat {
  const type = String(request.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim()
    .toLowerCase();
  const body = request.body as Partial<Readable> | undefined;
  if ((type === 'text/csv' || type === 'application/x-ndjson') && typeof body?.resume === 'function') {
    return type === 'text/csv' ? 'csv' : 'ndjson';
  }
  throw new SimcredError(
    'SIMCRED_UNSUPPORTED_MEDIA_TYPE',
    'content-type: a device file is text/csv or application/x-ndjson',
  );
}

function tooLarge(limit: number): SimcredError {
  return new SimcredError(
    'SIMCRED_BODY_TOO_LARGE',
    `the device file is larger than the upload limit of ${limit} bytes (${(limit / 1048576).toFixed(0)} MiB)`,
  );
}

/** The request stream, failing with SIMCRED_BODY_TOO_LARGE once more than `limit` bytes have come. */
async function* limited(source: Readable, limit: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge(limit);
    yield chunk;
  }
}

/**
 * GET /api/v1/stream: server-sent events, scoped to what the account may see. Mounted by hand since
 * its answer is a stream; the session is checked as on any account route.
 */
function mountEventStream(app: FastifyInstance, o: PortalApiOptions): void {
  const spec = portal.eventStream;
  // Open streams never go idle: they are ended when the server closes, or close would wait for them.
  const open = new Set<FastifyReply['raw']>();
  app.addHook('preClose', async () => {
    for (const raw of open) raw.end();
  });
  app.route({
    method: spec.method,
    url: spec.path,
    config: { route: spec },
    handler: async (request, reply) => {
      const session = await requireSession(request, spec, o.accounts);
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      raw.write('retry: 3000\n\n');
      const send = (event: PortalEvent) =>
        raw.write(`event: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`);
      const unsubscribe = o.hub.subscribe(
        { accountId: session.account.id, kind: session.account.kind },
        send,
      );
      if (session.account.kind === 'operator') {
        void o.contracts.funnel().then(
          (data) => send({ type: 'funnel', data }),
          () => undefined,
        );
      }
      // A comment now and then keeps proxies from closing an idle stream, and notices a session that ended.
      const heartbeat = setInterval(() => {
        void o.accounts.session(session.sessionId).then((still) => {
          if (still) raw.write(': keep-alive\n\n');
          else raw.end();
        });
      }, 15_000);
      heartbeat.unref();
      open.add(raw);
      const close = () => {
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(raw);
      };
      raw.on('close', close);
      request.raw.on('close', close);
    },
  });
}
