import type { DeviceState } from './api.js';
import { ApiError } from './api.js';

/** What each state means, in the words an owner or an operator would use. */
export const STATE_WORDS: Record<DeviceState, string> = {
  pending: 'accepted, waiting to be registered',
  registered: 'registered, waiting for the device to call in',
  authenticated: 'device authenticated',
  referred: 'device sent to its download server',
  delivered: 'credentials delivered',
  completed: 'credentials installed',
  attached: 'on the network',
  failed: 'stopped with an error',
  expired: 'registration expired',
  revoked: 'cancelled or revoked',
  rejected: 'refused at registration',
  suspended: 'suspended by the operator',
  active: 'resumed, may use the network again',
  deleted: 'subscription deleted',
  reprovisioned: 'getting a new credential (re-provisioned)',
  transferring: 'moving to another operator',
  transferred: 'moved to another operator',
};

/**
 * The built-in test payment provider's rule (docs/portal.md), shown next to the payment field so a
 * tester knows how to see a declined payment.
 */
export const TEST_PAYMENT_HINT =
  'Test payments: a reference starting with "DECLINE" is declined, any other is authorised.';

/** Plain words for the codes a person can act on; otherwise the server's own message. */
const CODE_WORDS: Record<string, string> = {
  SIMCRED_LOGIN_FAILED: 'The e-mail address or the password is wrong.',
  SIMCRED_RATE_LIMITED: 'Too many attempts. Wait a minute, then try again.',
  SIMCRED_ACCOUNT_EXISTS: 'There is already an account with this e-mail address. Log in instead.',
  SIMCRED_UNAUTHENTICATED: 'Your session has ended. Please log in again.',
  SIMCRED_CSRF_INVALID: 'This page was open too long. Reload it and try again.',
  SIMCRED_FORBIDDEN_ACCOUNT: 'Your account cannot open this page.',
  SIMCRED_PAYMENT_DECLINED:
    'The payment for this contract was declined. Retry the payment before adding devices.',
  SIMCRED_PLAN_LIMIT: 'The plan of this contract allows no more devices.',
  SIMCRED_CONTRACT_UNKNOWN: 'There is no such contract, or it is not yours.',
  SIMCRED_DEVICE_UNKNOWN: 'There is no such device.',
  SIMCRED_REGISTRATION_USED: 'This device already has its credentials and can no longer be cancelled.',
  SIMCRED_BODY_TOO_LARGE: 'The file is too large for one upload. Split it into smaller files.',
  SIMCRED_DEPENDENCY_UNAVAILABLE: 'The portal is busy or under maintenance. Try again in a minute.',
  SIMCRED_INTERNAL: 'Something went wrong on our side. Try again; if it keeps happening, contact support.',
};

/** The sentence to show for an error that names no field. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) {
    const words = CODE_WORDS[err.code];
    if (words) return words;
    if (err.code === 'SIMCRED_UPLOAD_INVALID') return `The file cannot be read: ${err.message}`;
    return err.general.length > 0 ? err.general.join(' ') : err.message;
  }
  return 'Something went wrong. Try again.';
}

export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function formatCount(n: number): string {
  return n.toLocaleString('en');
}
