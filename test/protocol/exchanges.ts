import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { PeerClient } from '../../src/http/index.js';
import type { OpenApiDocument } from '../../src/protocol/openapi.js';

/** One request as sent and its answer as received. */
export interface Exchange {
  url: string;
  method: string;
  body: string | Buffer | undefined;
  contentType: string;
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A PeerClient that keeps every exchange, so the traffic of a real device can be checked afterwards. */
export class RecordingClient extends PeerClient {
  readonly exchanges: Exchange[] = [];

  override async send(
    url: string,
    method: string,
    body: string | Buffer | AsyncIterable<Uint8Array> | undefined,
    contentType: string,
  ): ReturnType<PeerClient['send']> {
    if (body !== undefined && typeof body !== 'string' && !Buffer.isBuffer(body)) {
      throw new Error('RecordingClient records string and Buffer bodies only');
    }
    const response = await super.send(url, method, body, contentType);
    this.exchanges.push({ url, method, body, contentType, ...response });
    return response;
  }
}

type Json = Record<string, unknown>;
interface Operation {
  operationId: string;
  parameters?: { name: string; in: 'path' | 'query'; required: boolean; schema: Json }[];
  requestBody?: { content: Record<string, { schema?: Json }> };
  responses: Record<string, { content?: Record<string, { schema?: Json }> }>;
}

// ajv-formats is CommonJS with a default export.
const addFormats = addFormatsModule as unknown as (ajv: InstanceType<typeof Ajv2020>) => void;

/**
 * Checks exchanges against an OpenAPI 3.1 document with ajv (JSON Schema 2020-12): the route exists,
 * the request matches its parameters and body, the status is documented for it, and the answer
 * matches that status's schema (an error's code among the route's codes). Returns the problems.
 */
export class OpenApiChecker {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly routes: { method: string; pattern: RegExp; names: string[]; operation: Operation }[] = [];

  constructor(document: OpenApiDocument) {
    addFormats(this.ajv);
    // Static paths first, so /health is never taken for an OCSP GET /{request}.
    const paths = Object.entries(document.paths).sort(
      ([a], [b]) => Number(a.includes('{')) - Number(b.includes('{')),
    );
    for (const [path, item] of paths) {
      const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
      const pattern = new RegExp(`^${path.replace(/\{[^}]+\}/g, '([^/]+)')}$`);
      for (const [method, operation] of Object.entries(item)) {
        this.routes.push({
          method: method.toUpperCase(),
          pattern,
          names,
          operation: operation as unknown as Operation,
        });
      }
    }
  }

  /** The operationId an exchange was answered by (undefined: the document has no such route). */
  operationOf(exchange: Exchange): string | undefined {
    return this.find(exchange)?.operation.operationId;
  }

  check(exchange: Exchange): string[] {
    const found = this.find(exchange);
    const where = `${exchange.method} ${new URL(exchange.url).pathname}`;
    if (!found) return [`${where}: not in the document`];
    const { operation, params } = found;
    const problems: string[] = [];
    const fail = (what: string, errors: unknown) =>
      problems.push(`${operation.operationId} ${what}: ${JSON.stringify(errors)}`);
    const query = new URL(exchange.url).searchParams;
    for (const parameter of operation.parameters ?? []) {
      const value =
        parameter.in === 'query' ? (query.get(parameter.name) ?? undefined) : params[parameter.name];
      if (value === undefined && !parameter.required) continue;
      if (!this.ajv.validate(parameter.schema, value)) fail(`parameter ${parameter.name}`, this.ajv.errors);
    }
    for (const name of query.keys()) {
      if (!(operation.parameters ?? []).some((p) => p.in === 'query' && p.name === name))
        problems.push(`${operation.operationId}: query parameter ${name} not documented`);
    }
    if (operation.requestBody && exchange.body !== undefined) {
      const type = exchange.contentType.split(';')[0]!.trim();
      const media = operation.requestBody.content[type];
      if (!media) problems.push(`${operation.operationId}: request type ${type} not documented`);
      else this.checkBody(media.schema, type, exchange.body.toString(), (e) => fail('request', e));
    }
    const response = operation.responses[String(exchange.statusCode)];
    if (!response) {
      problems.push(
        `${operation.operationId}: HTTP ${exchange.statusCode} not documented (${exchange.text})`,
      );
      return problems;
    }
    const type = String(exchange.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    const media = response.content?.[type];
    if (!media) {
      problems.push(
        `${operation.operationId}: HTTP ${exchange.statusCode} answered as ${type}, not documented`,
      );
      return problems;
    }
    this.checkBody(media.schema, type, exchange.text, (e) => fail(`HTTP ${exchange.statusCode}`, e));
    return problems;
  }

  private checkBody(schema: Json | undefined, type: string, text: string, fail: (errors: unknown) => void) {
    if (!schema || Object.keys(schema).length === 0) return; // binary (DER) bodies: the type is the contract
    const values =
      type === 'application/x-ndjson'
        ? text
            .split('\n')
            .filter((line) => line.trim())
            .map((line) => JSON.parse(line) as unknown)
        : [JSON.parse(text) as unknown];
    for (const value of values) if (!this.ajv.validate(schema, value)) fail(this.ajv.errors);
  }

  private find(exchange: Exchange) {
    const pathname = new URL(exchange.url).pathname;
    for (const route of this.routes) {
      if (route.method !== exchange.method) continue;
      const match = route.pattern.exec(pathname);
      if (!match) continue;
      const params = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
      return { operation: route.operation, params };
    }
    return undefined;
  }
}
