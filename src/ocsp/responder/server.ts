import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BoundedCache } from '../../crypto/bounded-cache.js';
import { isSimcredError, SimcredError } from '../../errors/index.js';
import {
  createHttpServer,
  holdIdleConnections,
  listen,
  mountServiceRoutes,
  undeclaredErrors,
  type UndeclaredError,
} from '../../http/index.js';
import { CaStore, type CertificateStatus } from '../../pki/store.js';
import type { IssuerName } from '../../pki/layout.js';
import { systemClock, type Clock } from '../../time/clock.js';
import { OCSP_REQUEST_TYPE, OCSP_RESPONSE_TYPE, ocspGet, ocspPost } from '../../protocol/ocsp.js';
import { ERROR_RESPONSES, parseRequest, signResponse, type ErrorStatus } from './engine.js';
import type { RoleTelemetry } from '../../ops/telemetry.js';
import { IssuerIndex, loadIssuersFromPki, prepareIssuer, type IssuerSource } from './issuers.js';

export { OCSP_REQUEST_TYPE, OCSP_RESPONSE_TYPE };
export const DEFAULT_OCSP_PORT = 7420;

/** The CA records the responder reads; CaStore in production, a stub in tests. */
export interface StatusSource {
  status(issuer: string, serialHex: string): Promise<CertificateStatus>;
  revocationGeneration(): Promise<number>;
  close?(): Promise<void>;
}

export interface OcspResponderOptions {
  /** PKI folder made by `simcred pki init` (pki.json + ca.db). */
  pkiDir?: string;
  /** Per issuing CA, the delegated signer's key as a pkcs11: URI or PEM path (config keys.ocspSigners); pki.json's otherwise. */
  signerKeys?: Partial<Record<IssuerName, string>>;
  /** Issuers given directly instead of through pkiDir (with `store`). */
  issuers?: IssuerSource[];
  store?: StatusSource;
  host?: string;
  port?: number;
  logger: Logger;
  /** nextUpdate − thisUpdate, seconds (default 3600). */
  validitySeconds?: number;
  /** How often at most the revocation generation is re-read, ms (default 200). */
  generationCheckMs?: number;
  /** Pre-signed nonce-less responses kept, and certificate statuses known (default 10 000 each). */
  cacheEntries?: number;
  bodyLimit?: number;
  /** The time responses are signed at and cache and revocation re-reads are paced by (tests set it). */
  clock?: Clock;
  /** Metrics (requests, answers by status) and readiness (the CA store answers). */
  telemetry?: RoleTelemetry;
}

export interface OcspResponder {
  url: string;
  close(): Promise<void>;
  /** Counters for tests and the bench. */
  stats: {
    requests: number;
    signed: number;
    cacheHits: number;
    /** Certificate statuses answered from memory rather than the CA store. */
    statusHits: number;
    errors: Record<ErrorStatus, number>;
  };
  /** Codes answered on routes that do not declare them (see startRoleServer); tests expect none. */
  undeclaredErrors(): UndeclaredError[];
  /** SIGTERM: the next close lets idle connections time out (src/http/server.ts holdIdleConnections). */
  holdIdleConnections(): void;
}

interface CachedResponse {
  der: Buffer;
  etag: string;
  thisUpdate: Date;
  nextUpdate: Date;
  refreshAt: number;
  /** The certificate statuses it answers (counted again each time it is served). */
  statuses: CertificateStatus['status'][];
}

/**
 * Starts the OCSP responder (RFC 6960 over RFC 5019 HTTP) for every issuing CA of a PKI folder.
 *
 * @example
 *   const ocsp = await startOcspResponder({ pkiDir: 'data/pki', port: 0, logger });
 *   // … checkCertificateStatus({ certificate, issuer, url: ocsp.url })
 *   await ocsp.close();
 */
export async function startOcspResponder(options: OcspResponderOptions): Promise<OcspResponder> {
  const logger = options.logger;
  const sources =
    options.issuers ?? (options.pkiDir ? loadIssuersFromPki(options.pkiDir, options.signerKeys) : undefined);
  if (!sources) throw new SimcredError('SIMCRED_CONFIG_INVALID', 'OCSP responder needs pkiDir or issuers');
  const index = new IssuerIndex(sources.map(prepareIssuer));
  const store: StatusSource =
    options.store ??
    (await CaStore.open(options.pkiDir ?? '.').then((s) => ({
      status: (issuer: string, serial: string) => s.status(issuer as never, serial),
      revocationGeneration: () => s.revocationGeneration(),
      close: () => s.close(),
    })));
  const validitySeconds = options.validitySeconds ?? 3600;
  const generationCheckMs = options.generationCheckMs ?? 200;
  const clock = options.clock ?? systemClock;
  const telemetry = options.telemetry;
  const cacheEntries = options.cacheEntries ?? 10_000;
  const stats: OcspResponder['stats'] = {
    requests: 0,
    signed: 0,
    cacheHits: 0,
    statusHits: 0,
    errors: { malformedRequest: 0, internalError: 0, tryLater: 0, unauthorized: 0 },
  };

  // Pre-signed responses to nonce-less requests, keyed by the request's DER (a function of its CertIDs).
  const cache = new Map<string, CachedResponse>();
  // Statuses read from the CA store, by issuer and serial: 'good' and 'revoked' only ('unknown' can
  // turn 'good' with the next certificate issued, so it is always read again). A good certificate
  // can only turn revoked, which moves the generation and clears this with the cached responses.
  const statuses = new BoundedCache<CertificateStatus>(cacheEntries);
  const statusOf = async (issuer: string, serial: string): Promise<CertificateStatus> => {
    const key = `${issuer}|${serial}`;
    const known = statuses.get(key);
    if (known) {
      stats.statusHits++;
      return known;
    }
    const read = await store.status(issuer, serial);
    if (read.status !== 'unknown') statuses.set(key, read);
    return read;
  };
  let generation: number | undefined;
  let generationCheckedAt = 0;
  let generationCheck: Promise<void> | undefined;
  const checkGeneration = async (): Promise<void> => {
    if (clock().getTime() - generationCheckedAt < generationCheckMs) return;
    generationCheck ??= store
      .revocationGeneration()
      .then((g) => {
        if (generation !== undefined && g !== generation) {
          logger.info({ generation: g }, 'revocations changed: cached responses and statuses dropped');
          cache.clear();
          statuses.clear();
        }
        generation = g;
        generationCheckedAt = clock().getTime();
      })
      .finally(() => (generationCheck = undefined));
    await generationCheck;
  };

  for (const issuer of index.issuers) {
    logger.info(
      { issuer: issuer.name, serial: issuer.cert.serialHex, signerSerial: issuer.signer.cert.serialHex },
      'serving OCSP for issuer',
    );
  }

  const answer = async (der: Uint8Array, reply: FastifyReply): Promise<FastifyReply> => {
    stats.requests++;
    const key = der.byteLength <= 1024 ? Buffer.from(der).toString('base64') : undefined;
    try {
      await checkGeneration();
    } catch (err) {
      return sendError(reply, 'tryLater', err);
    }
    if (key !== undefined) {
      const hit = cache.get(key);
      if (hit && clock().getTime() < hit.refreshAt) {
        stats.cacheHits++;
        for (const status of hit.statuses) telemetry?.ocspAnswer(status);
        return sendCached(reply, hit, clock());
      }
    }
    const parsed = parseRequest(der, index);
    if (!parsed.ok) return sendError(reply, parsed.error, parsed.reason);
    let certStatuses: CertificateStatus[];
    try {
      certStatuses = await Promise.all(parsed.serials.map((serial) => statusOf(parsed.issuer.name, serial)));
    } catch (err) {
      return sendError(reply, 'tryLater', err);
    }
    const now = clock();
    let signed: ReturnType<typeof signResponse>;
    try {
      signed = signResponse({
        issuer: parsed.issuer,
        certIds: parsed.certIds,
        statuses: certStatuses,
        now,
        validitySeconds,
        ...(parsed.nonce ? { nonce: parsed.nonce } : {}),
      });
    } catch (err) {
      // A signer in a PKCS#11 token that did not sign: RFC 6960's own "try later", never a 500.
      if (isSimcredError(err) && err.code === 'SIMCRED_KEY_STORE_UNAVAILABLE') {
        return sendError(reply, 'tryLater', err);
      }
      throw err;
    }
    stats.signed++;
    for (const s of certStatuses) telemetry?.ocspAnswer(s.status);
    if (parsed.nonce) {
      return reply.code(200).type(OCSP_RESPONSE_TYPE).header('cache-control', 'no-cache').send(signed.der);
    }
    const entry: CachedResponse = {
      der: signed.der,
      etag: `"${createHash('sha1').update(signed.der).digest('hex')}"`,
      thisUpdate: signed.thisUpdate,
      nextUpdate: signed.nextUpdate,
      // Re-sign halfway through the validity so a cached answer never nears nextUpdate.
      refreshAt: signed.thisUpdate.getTime() + (validitySeconds * 1000) / 2,
      statuses: certStatuses.map((c) => c.status),
    };
    if (key !== undefined) {
      if (cache.size >= cacheEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, entry);
    }
    return sendCached(reply, entry, now);
  };

  const sendError = (reply: FastifyReply, status: ErrorStatus, detail: unknown): FastifyReply => {
    stats.errors[status]++;
    telemetry?.ocspAnswer(status);
    if (status === 'tryLater' || status === 'internalError') {
      logger.warn({ status, err: detail instanceof Error ? detail.message : detail }, 'OCSP error response');
    } else {
      logger.debug({ status, reason: detail }, 'OCSP error response');
    }
    return reply
      .code(200)
      .type(OCSP_RESPONSE_TYPE)
      .header('cache-control', 'no-cache')
      .send(ERROR_RESPONSES[status]);
  };

  const app = createHttpServer({ logger, bodyLimit: options.bodyLimit ?? 64 * 1024, telemetry });
  telemetry?.readyWhen('store', () => store.revocationGeneration());
  let url = '';
  // GET /health and /openapi.json as on every role. Static routes win over the wildcard, and neither
  // path can be an RFC 5019 GET request: see ocspGet in src/protocol/ocsp.ts.
  mountServiceRoutes(app, 'ocsp', () => url);
  // Only OCSP requests are accepted: any other content type is a 415 from the error contract.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(OCSP_REQUEST_TYPE, { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const post = async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body;
    if (!Buffer.isBuffer(body)) {
      throw new SimcredError('SIMCRED_UNSUPPORTED_MEDIA_TYPE', `send ${OCSP_REQUEST_TYPE}`);
    }
    return answer(body, reply);
  };
  const get = async (request: FastifyRequest, reply: FastifyReply) => {
    const der = decodeGetPath(request.url);
    if (!der) return sendError(reply, 'malformedRequest', 'GET path is not base64 DER');
    return answer(der, reply);
  };
  app.post('/', { config: { route: ocspPost } }, post);
  app.post('/*', { config: { route: ocspPost } }, post);
  app.get('/*', { config: { route: ocspGet } }, get);
  app.addHook('onClose', async () => {
    await store.close?.();
  });

  url = await listen(app, {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? DEFAULT_OCSP_PORT,
  });
  logger.info({ url }, 'OCSP responder listening');
  return {
    url,
    stats,
    close: () => app.close(),
    undeclaredErrors: () => undeclaredErrors(app),
    holdIdleConnections: () => holdIdleConnections(app),
  };
}

/** RFC 6960 appendix A.1 / RFC 5019 §5: GET {url}/{url-encoding of base-64 encoding of the DER}. */
export function decodeGetPath(url: string): Buffer | undefined {
  const path = url.split('?')[0]!;
  // The base64 may itself contain '/', so try the longest tail first and drop prefix segments.
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length && i < 4; i++) {
    let text: string;
    try {
      text = decodeURIComponent(segments.slice(i).join('/'));
    } catch {
      continue;
    }
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) continue;
    const der = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (der.byteLength >= 2 && der[0] === 0x30) return der;
  }
  return undefined;
}

function sendCached(reply: FastifyReply, entry: CachedResponse, now: Date): FastifyReply {
  const maxAge = Math.max(0, Math.floor((entry.nextUpdate.getTime() - now.getTime()) / 1000));
  return reply
    .code(200)
    .type(OCSP_RESPONSE_TYPE)
    .header('cache-control', `max-age=${maxAge}, public, no-transform, must-revalidate`)
    .header('last-modified', entry.thisUpdate.toUTCString())
    .header('expires', entry.nextUpdate.toUTCString())
    .header('etag', entry.etag)
    .send(entry.der);
}
