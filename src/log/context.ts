import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

/** The header a request id travels in, into every role and out to every peer it calls. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Longest accepted incoming id; a longer one (or one with other characters) is replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;

const WELL_FORMED = /^[A-Za-z0-9._:@/+=-]+$/;

interface RequestContext {
  requestId: string;
}

// The one process-wide store of the current request id: async context is process-wide by nature,
// and the logger (every line) and the peer client (every outgoing call) read it without being
// handed the request.
const context = new AsyncLocalStorage<RequestContext>();

/**
 * The id of the request (or background job) this code runs for, if any.
 *
 * @example
 *   withRequestId('abc', () => currentRequestId()); // 'abc'
 */
export function currentRequestId(): string | undefined {
  return context.getStore()?.requestId;
}

/**
 * Runs `work` with `id` as the current request id: its log lines carry it as `reqId`, and the peer
 * calls it makes send it as x-request-id.
 *
 * @example
 *   await withRequestId(newRequestId('sweep'), () => sweepOnce());
 */
export function withRequestId<T>(id: string, work: () => T): T {
  return context.run({ requestId: id }, work);
}

/**
 * Makes `id` the current request id for the rest of this execution and what it schedules (the
 * server's request hooks, which cannot wrap the handler in a callback).
 */
export function enterRequestId(id: string): void {
  context.enterWith({ requestId: id });
}

/** A fresh id, optionally prefixed with what kind of work it names (`peer-actions-…`). */
export function newRequestId(prefix?: string): string {
  const id = randomUUID();
  return prefix ? `${prefix}-${id}` : id;
}

/**
 * An incoming x-request-id when it is well-formed (1–128 characters of letters, digits and
 * `._:@/+=-`), otherwise undefined: an id another party chose ends up in our logs, so it is bounded
 * and cannot carry control characters or separators.
 *
 * @example
 *   acceptedRequestId('dev-1234'); // 'dev-1234'
 *   acceptedRequestId('a\nb');     // undefined
 */
export function acceptedRequestId(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  if (value.length === 0 || value.length > MAX_REQUEST_ID_LENGTH) return undefined;
  return WELL_FORMED.test(value) ? value : undefined;
}
