// Fuzz targets for every route body (ALL_ROUTES) and the OCSP responder's HTTP front, sent to a real
// running system over HTTPS (peer routes with a genuine client certificate of an allowed role, so the
// body is what answers): arbitrary JSON, text that is not JSON, and near-valid bodies generated from
// the route's own zod schema (z.toJSONSchema) with one field dropped, added or replaced.
// The same route bodies also go in process (`inprocess:<route>`): into the same running role's
// fastify instance without a socket, through the same content-type parsers, body limit, schemas,
// handlers and error handler, several times faster; the HTTPS targets keep the TLS layer in the run.
// `schema:<route>` feeds the route's own schemas alone: what the long run takes to 1,000,000 inputs.
import { X509Certificate } from 'node:crypto';
import type { RequestListener } from 'node:http';
import fc from 'fast-check';
import inject from 'light-my-request';
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../../src/errors/index.js';
import { PeerClient, clientTls, loadTlsIdentity, parse } from '../../src/http/index.js';
import type { TlsRole } from '../../src/pki/index.js';
import { ALL_ROUTES, type RouteSpec } from '../../src/protocol/index.js';
import { buildOcspRequest } from '../../src/ocsp/client.js';
import { fromBase64url } from '../../src/crypto/encoding.js';
import { DeviceAgent } from '../../src/device/agent.js';
import { TrustedModule } from '../../src/device/trusted-module.js';
import { ocspStatusChecker } from '../../src/ocsp/checker.js';
import { lookup, lookupChallenge } from '../../src/protocol/registration.js';
import { derFault, derInputs } from './der.js';
import { Finding, acceptsOrRefuses, defineTarget, type FuzzTarget } from './harness.js';
import type { FuzzContext } from './context.js';
import type { RunningServer } from '../../src/http/index.js';

/** The only 5xx an input may cause: a dependency outage, retryable (documented with Retry-After). */
const ALLOWED_5XX: ErrorCode[] = ['SIMCRED_DEPENDENCY_UNAVAILABLE', 'SIMCRED_OCSP_UNREACHABLE'];

type JsonSchema = {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  const?: unknown;
};

/** A value of roughly the schema's shape (lengths may miss: near-valid is the point), with real samples mixed in. */
function fromSchema(
  schema: JsonSchema,
  samples: Record<string, fc.Arbitrary<unknown>>,
  name = '',
): fc.Arbitrary<unknown> {
  const own = samples[name];
  const generated = generate(schema, samples);
  return own ? fc.oneof(own, generated) : generated;
}

function generate(schema: JsonSchema, samples: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => generate(s, samples)));
  switch (schema.type) {
    case 'object': {
      const properties = schema.properties ?? {};
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, value] of Object.entries(properties)) record[key] = fromSchema(value, samples, key);
      return fc.record(record, { requiredKeys: (schema.required ?? []).filter((k) => k in properties) });
    }
    case 'array':
      return fc.array(schema.items ? generate(schema.items, samples) : fc.jsonValue(), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 5, 5),
      });
    case 'string':
      return stringFor(schema);
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e9 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e9, noNaN: true });
    case 'boolean':
      return fc.boolean();
    default:
      return fc.jsonValue();
  }
}

function stringFor(schema: JsonSchema): fc.Arbitrary<string> {
  if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
  if (schema.format === 'uri') return fc.webUrl();
  const min = schema.minLength ?? 0;
  const max = Math.min(schema.maxLength ?? 64, 2048);
  const base = schema.pattern ? fc.stringMatching(new RegExp(schema.pattern)) : fc.string({ maxLength: max });
  // Stretch to the length bounds by repetition (the pattern may then be missed, which is near-valid too).
  return base.map((s) =>
    (s.length === 0 ? s : s.length < min ? s.repeat(Math.ceil(min / s.length)) : s).slice(0, max),
  );
}

/** One field of a valid-shaped object dropped, replaced by any JSON, or an extra field added. */
function nearValid(valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return valid.chain((value) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return fc.constant(value);
    const keys = Object.keys(value);
    const edits: fc.Arbitrary<unknown>[] = [
      fc.constant(value),
      fc.tuple(fc.string({ maxLength: 12 }), fc.jsonValue()).map(([k, v]) => ({ ...value, [k]: v })),
    ];
    if (keys.length > 0) {
      edits.push(
        fc.constantFrom(...keys).map((k) => {
          const copy: Record<string, unknown> = { ...value };
          delete copy[k];
          return copy;
        }),
        fc.tuple(fc.constantFrom(...keys), fc.jsonValue()).map(([k, v]) => ({ ...value, [k]: v })),
      );
    }
    return fc.oneof(...edits);
  });
}

/** Sends one request: over HTTPS (a PeerClient) or in process. */
type Transport = (
  url: string,
  method: string,
  body: string | Buffer | undefined,
  contentType: string,
) => Promise<{ statusCode: number; text: string }>;

/**
 * Requests to a role's fastify instance without a socket (light-my-request, as fastify's own inject).
 * A peer route reads its caller from the TLS socket, which an injected request lacks; `peer` stands in
 * for a client certificate of that role that the TLS layer has already verified.
 */
function inProcess(server: RunningServer, peer: string | undefined, pkiDir: string): Transport {
  const handler = server.app.server.listeners('request')[0] as RequestListener;
  // That role's real certificate, as Node's getPeerCertificate() gives it.
  const chain = peer
    ? loadTlsIdentity(pkiDir, peer as TlsRole)
        .cert.split(/(?=-----BEGIN CERTIFICATE-----)/)
        .map((pem) => new X509Certificate(pem).raw)
    : [];
  const peerCertificate = {
    subject: { CN: `simcred-${peer}` },
    raw: chain[0],
  };
  const dispatch: RequestListener = peer
    ? (req, res) => {
        Object.assign(req.socket, {
          authorized: true,
          getPeerCertificate: () => peerCertificate,
        });
        handler(req, res);
      }
    : handler;
  return async (url, method, body, contentType) => {
    const response = await inject(dispatch, {
      method: method as 'GET' | 'POST',
      url: new URL(url).pathname + new URL(url).search,
      headers: body === undefined ? {} : { 'content-type': contentType },
      ...(body === undefined ? {} : { payload: body }),
    });
    return { statusCode: response.statusCode, text: response.payload };
  };
}

/** What one request sends. */
interface RouteInput {
  path: string;
  /** Raw body text (undefined: none). */
  body?: string;
  contentType: string;
}

/** Every route's target, and a close for the HTTP clients they share (their connections keep a process alive). */
export async function routeTargets(
  ctx: FuzzContext,
): Promise<{ targets: FuzzTarget[]; close(): Promise<void> }> {
  const { system } = ctx;
  const clients = new Map<string, PeerClient>();
  const clientFor = (route: { caller: RouteSpec['caller'] }): PeerClient => {
    const role = route.caller.kind === 'peer' ? route.caller.roles[0]! : 'device';
    let client = clients.get(role);
    if (!client) {
      client =
        role === 'device'
          ? new PeerClient({ tls: { ca: [system.pki.operator.root.pem] }, connections: 4 })
          : new PeerClient({
              tls: clientTls(loadTlsIdentity(ctx.config.pkiDir, role as TlsRole)),
              connections: 4,
            });
      clients.set(role, client);
    }
    return client;
  };
  const serverOf = (role: string): RunningServer => {
    const server = (system.servers as unknown as Record<string, RunningServer | RunningServer[]>)[role];
    return Array.isArray(server) ? server[0]! : server!;
  };
  const urls = system.urls as unknown as Record<string, string | string[]>;
  const baseUrl = (role: string): string => {
    const url = urls[role];
    return Array.isArray(url) ? url[0]! : url!;
  };

  // Real values for fields that carry them, so that generated bodies also get past the first checks.
  const chains = ctx.devices.map((d) => d.chainPem.map((pem) => pem.replace(/-----[^-]+-----|\s/g, '')));
  const leafDer = Buffer.from(chains[0]![0]!, 'base64');
  const leafInputs = derInputs([leafDer]);
  const samples: Record<string, fc.Arbitrary<unknown>> = {
    dsimId: fc.constantFrom(...ctx.devices.map((d) => d.image.dsimId)),
    certificateChain: fc.oneof(
      fc.constantFrom(...chains),
      leafInputs.map((input) => [input.bytes.toString('base64'), chains[0]![1]!]),
    ),
    deviceCertificate: fc.oneof(
      fc.constantFrom(...chains.map((c) => c[0]!)),
      leafInputs.map((input) => input.bytes.toString('base64')),
    ),
    registrationServer: fc.constantFrom(...system.urls.registration),
    credentialingUrl: fc.constant(system.urls.credentialing),
  };

  const targets: FuzzTarget[] = [];
  for (const route of ALL_ROUTES as RouteSpec[]) {
    const toSchema = (s: z.ZodType) =>
      z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
    const bodySchema = route.body ? toSchema(route.body) : undefined;
    const paramsSchema = route.params ? toSchema(route.params) : undefined;
    const paramsArb = paramsSchema
      ? fc.oneof(
          fromSchema(paramsSchema, samples) as fc.Arbitrary<Record<string, unknown>>,
          fc.dictionary(fc.constantFrom('dsimId', 'sessionId'), fc.string({ maxLength: 40 })),
        )
      : undefined;
    const pathArb: fc.Arbitrary<string> = paramsArb
      ? paramsArb.map((params) =>
          route.path.replace(/:([A-Za-z]+)/g, (_, name: string) =>
            encodeURIComponent(String(params[name] ?? '')),
          ),
        )
      : fc.constant(route.path);
    // Query strings: near-valid from the route's query schema (strings of its patterns, a key dropped
    // or added) or arbitrary keys and values. A valid long poll's wait is cut to 0: a poll that waits
    // for an event is the route working, not a hang, and would only slow the run.
    const querySchema = route.query ? toSchema(route.query) : undefined;
    const queryArb: fc.Arbitrary<string> = querySchema
      ? fc
          .oneof(
            { weight: 4, arbitrary: nearValid(fromSchema(querySchema, samples)) },
            {
              weight: 1,
              arbitrary: fc.dictionary(
                fc.oneof(fc.constantFrom(...Object.keys(querySchema.properties ?? {})), fc.string()),
                fc.string({ maxLength: 20 }),
              ),
            },
          )
          .map((value) => {
            if (value === null || typeof value !== 'object' || Array.isArray(value)) return '';
            const pairs = Object.entries(value as Record<string, unknown>).map(([k, v]): [string, string] => {
              // Generated values may be objects without a prototype, which String() cannot convert.
              const text = typeof v === 'string' ? v : (JSON.stringify(v) ?? '');
              return [k, k === 'waitSeconds' && /^[0-9]+$/.test(text) ? '0' : text];
            });
            return pairs.length === 0 ? '' : `?${new URLSearchParams(pairs).toString()}`;
          })
      : fc.constant('');
    const ndjson = route.bodyFormat === 'ndjson';
    const valid = bodySchema ? fromSchema(bodySchema, samples) : fc.constant(undefined);
    const jsonBody = fc.oneof(
      { weight: 4, arbitrary: nearValid(valid) },
      { weight: 2, arbitrary: fc.jsonValue() },
      { weight: 1, arbitrary: fc.object() },
    );
    const bodyText: fc.Arbitrary<string | undefined> = ndjson
      ? fc.oneof(
          fc
            .array(
              jsonBody.map((v) => JSON.stringify(v) ?? ''),
              { maxLength: 8 },
            )
            .map((lines) => lines.join('\n')),
          fc.string({ maxLength: 300 }),
        )
      : route.method === 'GET'
        ? fc.constant(undefined)
        : fc.oneof(
            { weight: 6, arbitrary: jsonBody.map((v) => JSON.stringify(v)) },
            { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
          );
    const contentType = fc.oneof(
      { weight: 8, arbitrary: fc.constant(ndjson ? 'application/x-ndjson' : 'application/json') },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          'text/plain',
          'application/json; charset=latin1',
          'application/x-ndjson',
          'application/json',
        ),
      },
    );
    const client = clientFor(route);
    const https: Transport = (url, method, body, type) => client.send(url, method, body, type);
    const base = baseUrl(route.role);
    const peer = route.caller.kind === 'peer' ? route.caller.roles[0] : undefined;
    const local = inProcess(serverOf(route.role), peer, ctx.config.pkiDir);
    const caller = route.caller.kind === 'peer' ? `peer: ${route.caller.roles.join(', ')}` : 'device';
    const arbitrary = fc.record({
      path: fc.tuple(pathArb, queryArb).map(([path, query]) => path + query),
      body: bodyText,
      contentType,
    });
    for (const [name, send, how] of [
      [`route:${route.id}`, https, 'over HTTPS'],
      [`inprocess:${route.id}`, local, 'in process'],
    ] as const) {
      targets.push(
        defineTarget<RouteInput>({
          name,
          covers: `${route.method} ${route.path} (${caller}) ${how}: arbitrary JSON, non-JSON text, near-valid bodies from its schema`,
          arbitrary,
          run: async (input) => {
            await sendAndCheck(send, `${base}${input.path}`, route.method, input);
          },
          stillServing: () => healthy(send, base),
        }),
      );
    }
    // The route's own schemas, as mountRoute applies them to a parsed body (for NDJSON: to each line)
    // and to the path parameters: fast enough for 1,000,000 inputs per route in the long run.
    const { body: bodySpec, params: paramsSpec, query: querySpec } = route;
    if (bodySpec || paramsSpec || querySpec) {
      targets.push(
        defineTarget<{ body: unknown; params: unknown; query: unknown }>({
          name: `schema:${route.id}`,
          covers: `${route.id}: its ${[bodySpec && (ndjson ? 'NDJSON line' : 'body'), paramsSpec && 'path', querySpec && 'query'].filter(Boolean).join(' and ')} schema, as the route applies it`,
          arbitrary: fc.record({
            body: bodySpec ? jsonBody : fc.constant(undefined),
            params: paramsArb ?? fc.constant(undefined),
            // As fastify hands a query over: an object of strings (arrays for a repeated key).
            query: queryArb.map((q) => {
              const out: Record<string, string | string[]> = {};
              for (const [k, v] of new URLSearchParams(q)) {
                const had = out[k];
                out[k] = had === undefined ? v : [...(Array.isArray(had) ? had : [had]), v];
              }
              return out;
            }),
          }),
          async run({ body, params, query }) {
            if (bodySpec)
              await acceptsOrRefuses(() => parse(bodySpec, body, 'body'), ['SIMCRED_BAD_REQUEST']);
            if (paramsSpec)
              await acceptsOrRefuses(() => parse(paramsSpec, params, 'path'), ['SIMCRED_BAD_REQUEST']);
            if (querySpec)
              await acceptsOrRefuses(() => parse(querySpec, query, 'query'), ['SIMCRED_BAD_REQUEST']);
          },
        }),
      );
    }
  }

  // Step 2 with a genuine grant, challenge and proof, and a device chain whose leaf is damaged or
  // re-encoded: the chain is what answers. A 200 must mean a strictly DER leaf (defect 3 of issue #12).
  const device = ctx.devices[0]!;
  const module = TrustedModule.fromFactoryImage(device, { persist: false });
  const deviceClient = clientFor({ caller: { kind: 'device' } });
  const deviceHttps: Transport = (url, method, body, type) => deviceClient.send(url, method, body, type);
  const agent = new DeviceAgent({
    module,
    client: deviceClient,
    registrationServer: device.image.registrationServer,
    phlrUrl: system.urls.phlr,
    hssUrl: system.urls.hss,
    operatorRoots: [ctx.operatorRoot],
    ocsp: ocspStatusChecker({ urls: [system.urls.ocsp] }),
    maxAttempts: 1,
  });
  const registrationUrl = device.image.registrationServer;
  targets.push(
    defineTarget<{ leaf: Buffer; kind: string }>({
      name: 'route:registration.lookup-chain',
      covers:
        'POST /v1/lookup with a genuine grant, challenge and proof and a damaged, BER-not-DER or random leaf certificate: a 200 only for strict DER',
      arbitrary: leafInputs.map((input) => ({ leaf: input.bytes, kind: input.kind })),
      async run({ leaf }) {
        const grant = await agent.accessGrant();
        const { challenge } = await deviceClient.call(registrationUrl, lookupChallenge, {
          body: { dsimId: module.dsimId },
        });
        const proof = module.signLookup(fromBase64url(challenge, 'challenge'));
        const body = JSON.stringify({
          dsimId: module.dsimId,
          grant,
          challenge,
          certificateChain: [leaf.toString('base64'), chains[0]![1]!],
          ...proof,
        });
        const response = await sendAndCheck(deviceHttps, `${registrationUrl}${lookup.path}`, 'POST', {
          path: lookup.path,
          body,
          contentType: 'application/json',
        });
        const fault = response === 200 ? derFault(leaf) : undefined;
        if (fault !== undefined) {
          throw new Finding(
            'crash',
            `the lookup accepted a leaf that is not strict DER (${fault}: ${leaf.toString('hex').slice(0, 48)}…)`,
          );
        }
      },
      stillServing: () => healthy(deviceHttps, registrationUrl),
    }),
  );

  // The OCSP responder's HTTP front: POST bodies and RFC 5019 GET paths.
  const ocspClient = new PeerClient({ connections: 4 });
  clients.set('ocsp', ocspClient);
  const ocspUrl = system.urls.ocsp;
  const requestDer = buildOcspRequest({
    certificate: ctx.devices[0]!.certificatePem,
    issuer: system.pki.manufacturer.deviceCa.pem,
  }).der;
  targets.push(
    defineTarget<{ method: 'GET' | 'POST'; bytes: Buffer; raw: boolean; contentType: string }>({
      name: 'route:ocsp.http',
      covers:
        'the OCSP responder over HTTP (POST body, RFC 5019 GET path): requests, damaged, BER-not-DER, random bytes',
      arbitrary: fc.record({
        method: fc.constantFrom('GET' as const, 'POST' as const),
        bytes: derInputs([requestDer]).map((i) => i.bytes),
        raw: fc.boolean(),
        contentType: fc.constantFrom('application/ocsp-request', 'application/json', 'text/plain'),
      }),
      async run({ method, bytes, raw, contentType }) {
        const path = raw
          ? encodeURIComponent(bytes.toString('latin1'))
          : encodeURIComponent(bytes.toString('base64'));
        const response =
          method === 'GET'
            ? await ocspClient.send(`${ocspUrl}/${path}`, 'GET', undefined, contentType)
            : await ocspClient.send(`${ocspUrl}/`, 'POST', bytes, contentType);
        if (response.statusCode >= 500)
          throw new Finding('5xx', `OCSP ${method}: HTTP ${response.statusCode}`);
      },
      stillServing: async () => {
        const response = await ocspClient.send(`${ocspUrl}/`, 'POST', requestDer, 'application/ocsp-request');
        if (response.statusCode !== 200)
          throw new Finding('crash', `OCSP answers HTTP ${response.statusCode} to a valid request`);
      },
    }),
  );
  return {
    targets,
    close: async () => {
      await Promise.all([...clients.values()].map((c) => c.close()));
    },
  };
}

/** Sends one request and checks the error contract; returns the HTTP status. */
async function sendAndCheck(
  send: Transport,
  url: string,
  method: string,
  input: RouteInput,
): Promise<number> {
  const response = await send(url, method, input.body, input.contentType);
  const status = response.statusCode;
  if (status >= 200 && status < 300) return status;
  let body: { code?: string; message?: string };
  try {
    body = JSON.parse(response.text.split('\n')[0]!) as typeof body;
  } catch {
    throw new Finding(
      status >= 500 ? '5xx' : 'crash',
      `HTTP ${status} without a JSON error body: ${response.text.slice(0, 120)}`,
    );
  }
  const code = body.code as ErrorCode | undefined;
  if (code === undefined || !(code in ERROR_CODES) || ERROR_CODES[code].status !== status) {
    throw new Finding(status >= 500 ? '5xx' : 'crash', `HTTP ${status} with code ${String(body.code)}`);
  }
  // Every target calls as an allowed caller, so a refusal of the caller means the body was never read.
  if (code === 'SIMCRED_UNAUTHENTICATED_PEER' || code === 'SIMCRED_FORBIDDEN_PEER') {
    throw new Finding('crash', `the fuzzer's caller was refused (${code}): the body was not reached`);
  }
  if (status >= 500 && !ALLOWED_5XX.includes(code)) {
    throw new Finding('5xx', `HTTP ${status} ${code}: ${body.message ?? ''}`);
  }
  if (status < 400) throw new Finding('crash', `HTTP ${status}`);
  return status;
}

async function healthy(send: Transport, base: string): Promise<void> {
  const response = await send(`${base}/health`, 'GET', undefined, 'application/json');
  if (response.statusCode !== 200)
    throw new Finding('crash', `GET /health answers HTTP ${response.statusCode}`);
}
