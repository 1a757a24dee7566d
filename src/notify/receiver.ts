import type { IncomingMessage, ServerResponse } from 'node:http';
import { WebhookNotification } from '../protocol/orders.js';
import { SIGNATURE_HEADER, parseSignatureHeader, signatureMatches } from './signature.js';

/** Why a receiver refused a notification: stable names an operator's code can switch on. */
export type RefusalReason =
  | 'signature-missing'
  | 'signature-malformed'
  | 'signature-mismatch'
  | 'timestamp-outside-tolerance'
  | 'replayed'
  | 'body-invalid';

export type Verdict =
  { ok: true; notification: WebhookNotification; timestamp: number } | { ok: false; reason: RefusalReason };

export interface WebhookReceiverOptions {
  /** The webhook's secret (shown once by `simcred operator webhooks add`); several while rotating. */
  secret: string | string[];
  /** How far the signed timestamp may be from now, either way (default 300 s). */
  toleranceSeconds?: number;
  /** The receiver's clock in milliseconds (tests inject one). */
  now?: () => number;
}

/** The default tolerance: 5 minutes, as Stripe's. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * The operator's side of notifications: checks a delivery's Simcred-Signature with the webhook's
 * secret (constant-time compare), refuses a timestamp outside the tolerance and a delivery seen
 * before (the same eventId with the same signature: a captured request sent again), and parses the
 * body. A redelivery by simcred (at-least-once) is signed afresh and is accepted: deduplicate by
 * `eventId`. Remembers signatures only while their timestamp is within the tolerance, since older
 * ones are refused anyway.
 *
 * @example
 *   const receiver = new WebhookReceiver({ secret: process.env.SIMCRED_WEBHOOK_SECRET! });
 *   http.createServer(receiver.listener(async (n) => console.log(n.dsimId, n.state))).listen(8080);
 */
export class WebhookReceiver {
  private readonly secrets: string[];
  private readonly toleranceMs: number;
  private readonly now: () => number;
  /** eventId + signature → when it may be forgotten (ms), in insertion order. */
  private readonly seen = new Map<string, number>();

  constructor(options: WebhookReceiverOptions) {
    this.secrets = Array.isArray(options.secret) ? options.secret : [options.secret];
    if (this.secrets.length === 0 || this.secrets.some((s) => s.length === 0))
      throw new TypeError('WebhookReceiver needs a non-empty secret');
    this.toleranceMs = (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS) * 1000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Checks one delivery: the raw body exactly as received and its Simcred-Signature header.
   *
   * @example
   *   const verdict = receiver.verify(rawBody, req.headers['simcred-signature']);
   *   if (!verdict.ok) return res.writeHead(400).end(verdict.reason);
   */
  verify(body: string | Buffer, header: string | string[] | undefined): Verdict {
    if (header === undefined || (Array.isArray(header) && header.length === 0))
      return { ok: false, reason: 'signature-missing' };
    if (Array.isArray(header)) return { ok: false, reason: 'signature-malformed' };
    const parsed = parseSignatureHeader(header);
    if (!parsed) return { ok: false, reason: 'signature-malformed' };
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (!this.secrets.some((secret) => signatureMatches(secret, parsed.timestamp, text, parsed.signatures)))
      return { ok: false, reason: 'signature-mismatch' };
    const now = this.now();
    if (Math.abs(now - parsed.timestamp * 1000) > this.toleranceMs)
      return { ok: false, reason: 'timestamp-outside-tolerance' };
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false, reason: 'body-invalid' };
    }
    const notification = WebhookNotification.safeParse(json);
    if (!notification.success) return { ok: false, reason: 'body-invalid' };
    this.forgetExpired(now);
    const key = `${notification.data.eventId}:${[...parsed.signatures].sort().join(',')}`;
    if (this.seen.has(key)) return { ok: false, reason: 'replayed' };
    this.seen.set(key, parsed.timestamp * 1000 + this.toleranceMs);
    return { ok: true, notification: notification.data, timestamp: parsed.timestamp };
  }

  private forgetExpired(now: number): void {
    for (const [key, until] of this.seen) {
      // Roughly in time order: stop at the first one still remembered.
      if (until >= now) break;
      this.seen.delete(key);
    }
  }

  /**
   * A node:http request listener: a POST whose notification verifies is handed to `onNotification`
   * and answered 204 (a throw answers 500, so simcred delivers it again later); a refused one is
   * answered 400 with `{"reason": …}` and never reaches the handler.
   *
   * @example
   *   http.createServer(receiver.listener((n) => store.upsert(n.eventId, n))).listen(8080, '127.0.0.1');
   */
  listener(
    onNotification: (notification: WebhookNotification) => void | Promise<void>,
    onRefusal: (reason: RefusalReason) => void = () => {},
  ): (request: IncomingMessage, response: ServerResponse) => void {
    return (request, response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      request.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          response.writeHead(413).end();
          request.destroy();
        } else chunks.push(chunk);
      });
      request.on('end', () => {
        if (request.method !== 'POST') {
          response.writeHead(405).end();
          return;
        }
        const verdict = this.verify(Buffer.concat(chunks), request.headers[SIGNATURE_HEADER]);
        if (!verdict.ok) {
          onRefusal(verdict.reason);
          response.writeHead(400, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ reason: verdict.reason }));
          return;
        }
        Promise.resolve()
          .then(() => onNotification(verdict.notification))
          .then(
            () => response.writeHead(204).end(),
            () => response.writeHead(500).end(),
          );
      });
    };
  }
}

/** A notification is a few hundred bytes; anything this large is not one. */
const MAX_BODY_BYTES = 64 * 1024;
