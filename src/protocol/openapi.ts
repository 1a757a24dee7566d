import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { DEFAULT_HOST, DEFAULT_PORTS } from '../config/config.js';
import { ERROR_CODES, SimcredError, type ErrorCode } from '../errors/index.js';
import { routesOf } from './index.js';
import { routeErrors, type RouteSpec } from './route.js';
import type { ServingRole } from './service.js';

type JsonObject = Record<string, unknown>;

/** An OpenAPI 3.1 document (validated in the tests with @seriousme/openapi-schema-validator). */
export interface OpenApiDocument extends JsonObject {
  openapi: string;
  info: { title: string; version: string } & JsonObject;
  servers: { url: string; description?: string }[];
  paths: Record<string, Record<string, JsonObject>>;
}

export const NDJSON_TYPE = 'application/x-ndjson';

let packageInfo: { version: string; license: string } | undefined;

/**
 * simcred's package.json, found upwards from this module (it runs from dist/src/protocol): read, not
 * imported, as JSON modules still warn on some Node 20 releases.
 */
function simcredPackage(): { version: string; license: string } {
  if (packageInfo) return packageInfo;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const json = JSON.parse(readFileSync(candidate, 'utf8')) as {
        name?: string;
        version: string;
        license: string;
      };
      if (json.name === 'simcred') return (packageInfo = { version: json.version, license: json.license });
    }
    if (dirname(dir) === dir) throw new SimcredError('SIMCRED_IO', 'simcred package.json not found');
  }
}

/** The OCSP responder speaks plain HTTP (RFC 5019); every other role HTTPS under the operator CA. */
function scheme(role: ServingRole): string {
  return role === 'ocsp' ? 'http' : 'https';
}

/** The URLs a role listens on with the default configuration (src/config: every role on loopback). */
export function defaultServerUrls(role: ServingRole): string[] {
  const ports: number | readonly number[] = DEFAULT_PORTS[role];
  return (typeof ports === 'number' ? [ports] : ports).map(
    (port) => `${scheme(role)}://${DEFAULT_HOST}:${port}`,
  );
}

/** A zod schema as a JSON Schema 2020-12 object (OpenAPI 3.1's dialect), without its $schema line. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const converted = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as JsonObject;
  delete converted.$schema;
  return converted;
}

/** The error body of one status: the contract's {code, message} with the codes this route can answer. */
function errorBody(codes: ErrorCode[]): JsonObject {
  return {
    type: 'object',
    required: ['code', 'message'],
    additionalProperties: false,
    properties: {
      code: { type: 'string', enum: codes },
      message: { type: 'string', description: 'one line; below 500 it says what was wrong' },
    },
  };
}

function parameters(route: RouteSpec): JsonObject[] {
  const of = (schema: z.ZodType | undefined, where: 'path' | 'query'): JsonObject[] => {
    if (!schema) return [];
    const json = jsonSchema(schema, 'input') as {
      properties?: Record<string, JsonObject>;
      required?: string[];
    };
    return Object.entries(json.properties ?? {}).map(([name, property]) => {
      const { description, ...rest } = property;
      return {
        name,
        in: where,
        // Path parameters are always required (OpenAPI 3.1 §4.8.12.1); a query parameter when its schema says so.
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(typeof description === 'string' ? { description } : {}),
        schema: rest,
      };
    });
  };
  return [...of(route.params, 'path'), ...of(route.query, 'query')];
}

function requestBody(route: RouteSpec): JsonObject | undefined {
  if (route.bodyFormat === 'binary') {
    // One entry per media type ("text/csv, application/x-ndjson" is two).
    return route.media?.request
      ? {
          required: true,
          content: Object.fromEntries(
            route.media.request.split(',').map((type) => [type.trim(), { schema: {} }]),
          ),
        }
      : undefined;
  }
  if (!route.body) return undefined;
  if (route.bodyFormat === 'ndjson') {
    return {
      required: true,
      description: 'NDJSON: one object per line, as this schema; blank lines are skipped.',
      content: { [NDJSON_TYPE]: { schema: jsonSchema(route.body, 'input') } },
    };
  }
  return { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } };
}

function success(route: RouteSpec): JsonObject {
  if (route.bodyFormat === 'binary') {
    return { description: 'the answer (binary)', content: { [route.media!.response]: { schema: {} } } };
  }
  if (route.bodyFormat === 'ndjson') {
    const lines = route.progress
      ? { anyOf: [jsonSchema(route.progress, 'output'), jsonSchema(route.response, 'output')] }
      : jsonSchema(route.response, 'output');
    return {
      description:
        'NDJSON, streamed: progress lines while the batch is read, then the outcome as the last line. Each line is one of these schemas.',
      content: { [NDJSON_TYPE]: { schema: lines } },
    };
  }
  return {
    description: 'success',
    content: { 'application/json': { schema: jsonSchema(route.response, 'output') } },
  };
}

function responses(route: RouteSpec): JsonObject {
  const out: JsonObject = { '200': success(route) };
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of routeErrors(route)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    out[String(status)] = {
      description: codes.map((code) => `\`${code}\`: ${ERROR_CODES[code].meaning}`).join('\n'),
      // 503 (an outage) and 429 (an abuse limit, docs/abuse-limits.md) say when to come back.
      ...(status === 503 || status === 429
        ? {
            headers: {
              'Retry-After': {
                description: 'seconds to wait before retrying',
                schema: { type: 'string', pattern: '^[0-9]+$' },
              },
            },
          }
        : {}),
      content: { 'application/json': { schema: errorBody(codes) } },
    };
  }
  return out;
}

function operation(route: RouteSpec): JsonObject {
  const callers =
    route.caller.kind === 'peer'
      ? `peer servers of role ${route.caller.roles.join(', ')} (mutual TLS; the client certificate's CN is simcred-<role>)`
      : route.caller.kind === 'device'
        ? 'devices (no client certificate; the device proves itself in the body)'
        : route.caller.kind === 'account'
          ? `signed-in portal accounts (${route.caller.accounts.join(', ')}): the simcred_session cookie${route.method === 'GET' ? '' : ", and the session's CSRF token in the x-csrf-token header"}`
          : 'anyone';
  const params = parameters(route);
  const body = requestBody(route);
  return {
    operationId: route.id,
    tags: [route.role],
    summary: route.summary.split(/(?<=\.)\s/)[0]!,
    description: `${route.summary}\n\n${route.steps ? `DESIGN §2 steps: ${route.steps}. ` : ''}Callers: ${callers}.`,
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(body ? { requestBody: body } : {}),
    responses: responses(route),
    security: route.caller.kind === 'peer' ? [{ mutualTLS: [] }] : [],
    ...(route.caller.kind === 'peer' ? { 'x-simcred-peer-roles': route.caller.roles } : {}),
  };
}

/**
 * A role's OpenAPI 3.1 document, generated from its route specs (the same zod schemas the server
 * validates with): docs/openapi/<role>.json (`npm run docs:openapi`) and GET /openapi.json.
 *
 * @example
 *   const doc = openApiDocument('hss', { servers: ['https://hss.example:7430'] });
 */
export function openApiDocument(role: ServingRole, options: { servers?: string[] } = {}): OpenApiDocument {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routesOf(role)) {
    const path = route.path.replace(/:([A-Za-z]+)/g, '{$1}');
    (paths[path] ??= {})[route.method.toLowerCase()] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: `simcred ${role}`,
      version: simcredPackage().version,
      description:
        role === 'ocsp'
          ? 'The simcred OCSP responder (RFC 6960 over the RFC 5019 HTTP profile), generated from src/protocol. Bodies are DER, not JSON; HTTP errors follow the simcred error contract {code, message} (docs/errors.md).'
          : `The simcred ${role} role, generated from src/protocol (docs/protocol.md describes the same routes). HTTPS with a server certificate from the operator CA. Every error is {code, message} with the status of its code (docs/errors.md); a 503 or 429 carries Retry-After.`,
      license: { name: simcredPackage().license, identifier: simcredPackage().license },
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: (options.servers ?? defaultServerUrls(role)).map((url) => ({ url })),
    paths,
    components: {
      securitySchemes: {
        mutualTLS: {
          type: 'mutualTLS',
          description:
            "Server-to-server routes: a TLS client certificate chaining to the operator CA whose CN is simcred-<role> of a role the route allows (x-simcred-peer-roles); without one SIMCRED_UNAUTHENTICATED_PEER, with another role's SIMCRED_FORBIDDEN_PEER.",
        },
      },
    },
  };
}

/** The committed form of a document (docs/openapi/<role>.json): two-space JSON and a final newline. */
export function renderOpenApiFile(document: OpenApiDocument): string {
  return `${JSON.stringify(document, null, 2)}\n`;
}
