import { z } from 'zod';
import { NOTIFICATIONS_DOC } from './notify-doc.js';
import { WebhookNotification } from './orders.js';
import { ERROR_CODES } from '../errors/index.js';
import { OCSP_ROUTES } from './index.js';
import { routeErrors, type RouteSpec } from './route.js';
import { serviceRoutes, type ServingRole } from './service.js';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  pattern?: string;
  format?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  description?: string;
};

function describeType(s: JsonSchema): string {
  if (s.anyOf) return s.anyOf.map(describeType).join(' or ');
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (s.type === 'array') {
    const bounds =
      s.minItems !== undefined || s.maxItems !== undefined
        ? ` (${s.minItems ?? 0}–${s.maxItems ?? '∞'})`
        : '';
    return `array of ${s.items ? describeType(s.items) : 'any'}${bounds}`;
  }
  if (s.type === 'object') return 'object';
  const type = Array.isArray(s.type) ? s.type.join(' or ') : (s.type ?? 'any');
  const notes = [
    s.format,
    s.pattern ? `pattern \`${s.pattern}\`` : '',
    s.minLength !== undefined && s.maxLength !== undefined && s.minLength === s.maxLength
      ? `${s.minLength} chars`
      : [
          s.minLength !== undefined ? `≥${s.minLength}` : '',
          s.maxLength !== undefined ? `≤${s.maxLength} chars` : '',
        ]
          .filter(Boolean)
          .join(', '),
  ].filter(Boolean);
  return notes.length > 0 ? `${type} (${notes.join('; ')})` : type;
}

function fieldTable(title: string, schema: z.ZodType | undefined): string[] {
  if (!schema) return [];
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  if (!json.properties) return [`${title}: ${describeType(json)}`, ''];
  const rows = Object.entries(json.properties).map(([name, field]) => {
    const nested =
      field.type === 'array' && field.items?.properties
        ? ` — each: ${Object.entries(field.items.properties)
            .map(([n, f]) => `\`${n}\` ${describeType(f)}`)
            .join(', ')}`
        : '';
    const required = json.required?.includes(name) ? 'yes' : 'no';
    return `| \`${name}\` | ${describeType(field)}${nested} | ${required} | ${field.description ?? ''} |`;
  });
  return [`${title}:`, '', '| field | type | required | meaning |', '| --- | --- | --- | --- |', ...rows, ''];
}

function renderRoute(route: RouteSpec): string[] {
  const caller = route.caller.kind === 'peer' ? `peer: ${route.caller.roles.join(', ')}` : route.caller.kind;
  // Binary bodies are DER (OCSP) or XML (OMA DM's SyncML), as their media type says.
  const encoding = route.media?.response.endsWith('+xml') ? 'XML' : 'DER';
  const format =
    route.bodyFormat === 'ndjson'
      ? ' — body: NDJSON stream (application/x-ndjson), one object per line'
      : route.bodyFormat === 'binary'
        ? ` — bodies: ${encoding}, not JSON`
        : '';
  const bodies =
    route.bodyFormat === 'binary'
      ? [
          ...(route.media?.request ? [`Request: \`${route.media.request}\` (${encoding})`, ''] : []),
          `Response: \`${route.media!.response}\` (${encoding})`,
          '',
        ]
      : [
          ...fieldTable(route.bodyFormat === 'ndjson' ? 'Each request line' : 'Request', route.body),
          ...fieldTable('Progress lines', route.progress),
          ...fieldTable(route.bodyFormat === 'ndjson' ? 'Last response line' : 'Response', route.response),
        ];
  return [
    `### ${route.method} ${route.path}`,
    '',
    `\`${route.id}\`${route.steps ? ` — steps ${route.steps}` : ''} — caller: ${caller}${format}`,
    '',
    route.summary,
    '',
    ...fieldTable('Path parameters', route.params),
    ...fieldTable('Query parameters (strings in the URL)', route.query),
    ...bodies,
    'Errors: ' +
      routeErrors(route)
        .map((code) => `\`${code}\` (${ERROR_CODES[code].status})`)
        .join(', '),
    '',
  ];
}

/**
 * docs/protocol.md, generated from the route specs so the document and the code cannot drift
 * (`npm run docs:protocol`; a test compares them): the JSON routes of each role, the OCSP
 * responder's, and the two every role serves.
 */
export function renderProtocolDoc(
  routes: readonly RouteSpec[],
  more: { ocsp: readonly RouteSpec[]; everyRole: readonly RouteSpec[] } = {
    ocsp: OCSP_ROUTES,
    everyRole: serviceRoutes('<role>' as ServingRole),
  },
): string {
  const out: string[] = [
    '# simcred protocol',
    '',
    'Every endpoint of every role, generated from `src/protocol/*.ts` (the same zod schemas validate the',
    "server's input and the peer's typed client). Bodies are JSON unless noted. Every error is",
    '`{"code": "SIMCRED_…", "message": "…"}` with the status of its code (docs/errors.md); a 503 or 429',
    'carries `Retry-After`. Each route lists every code it can answer: its own, and those the shared HTTP',
    'layer adds by its shape — `SIMCRED_BAD_REQUEST` (a body, path or query parameter fails its schema),',
    '`SIMCRED_BODY_TOO_LARGE` and `SIMCRED_UNSUPPORTED_MEDIA_TYPE` (any POST), the peer codes (peer routes),',
    '`SIMCRED_DEPENDENCY_UNAVAILABLE` (a route that reads a database), the abuse limits of device routes',
    '(`SIMCRED_ADDRESS_RATE_LIMITED`, `SIMCRED_IDENTITY_RATE_LIMITED`, `SIMCRED_AKA_THROTTLED`:',
    'docs/abuse-limits.md) and `SIMCRED_INTERNAL` (a bug). A',
    "server logs any other code it answers as 'undeclared error code'. A path no route matches is",
    '`SIMCRED_NOT_FOUND` (404).',
    '',
    'Callers: **device** routes need no client certificate (the device proves itself in the body);',
    '**peer** routes need mutual TLS with a certificate from the operator CA whose CN is',
    '`simcred-<role>` of an allowed role (else `SIMCRED_UNAUTHENTICATED_PEER` / `SIMCRED_FORBIDDEN_PEER`);',
    '**public** routes are open to anyone. Each role also serves its OpenAPI 3.1 document at',
    '`GET /openapi.json` (committed as docs/openapi/<role>.json, `npm run docs:openapi`).',
    '',
    '**Operator change** (`POST /v1/operator/devices/:dsimId/transfer`, `POST /v1/transfers`,',
    "`POST /v1/transfers/fetch`, `POST /v1/transfers/confirmation`, the HSS's `POST /v1/transfers/statements`):",
    "the current operator's HSS signs a transfer statement with the package signer, the registration server",
    "keeps it for the device, the device takes the new operator's root into its module, onboards there and",
    'confirms; the old subscription then ends',
    '(docs/architecture.md, "Operator change").',
    '',
    '**Event feeds** (`GET /v1/operator/events`, `GET /v1/subscribers/events`) list events by an',
    'increasing id, the cursor: call with `after` = the `next` of the previous answer. With',
    '`waitSeconds` and nothing new, the answer waits (long poll) until an event is committed (in the same',
    'process at once, from other processes sharing the store within a second) or the wait ends, then',
    'answers what there is, possibly nothing. On PostgreSQL ids could commit out of order under',
    'concurrent writers (11 still open while 12 is committed and read): every transaction that writes',
    'a feed row takes a transaction-scoped advisory lock just before that insert, its last statement,',
    'so ids commit in order and no event is ever listed after a larger id was (SQLite has one writer',
    'at a time already). Each credentialing event carries the state it moves its device to, or null.',
    '',
    'Generated by `npm run docs:protocol` — do not edit by hand.',
    '',
  ];
  const roles = [...new Set(routes.map((r) => r.role))];
  for (const role of roles) {
    out.push(`## ${role}`, '');
    for (const route of routes.filter((r) => r.role === role)) out.push(...renderRoute(route));
  }
  out.push('## ocsp', '');
  for (const route of more.ocsp) out.push(...renderRoute(route));
  out.push('## every role (the OCSP responder included)', '');
  for (const route of more.everyRole) out.push(...renderRoute(route));
  out.push(...NOTIFICATIONS_DOC, ...fieldTable('The notification body', WebhookNotification));
  return out.join('\n');
}
