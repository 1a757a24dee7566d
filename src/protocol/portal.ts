import { z } from 'zod';
import { ACCOUNT, PUBLIC, defineRoute } from './route.js';
import { dsimId, imsi, timestamp } from './fields.js';
import { DeviceFeedState } from './credentialing.js';

/*
 * The contract portal's API (step 0a of DESIGN §2): what the browser front end (web/) calls, and
 * nothing else. Owners sign up, sign contracts and list their devices; operators watch every
 * contract and the fleet. Browser callers are identified by a session cookie (HttpOnly,
 * SameSite=Strict, Secure); every state-changing request also carries the session's CSRF token in
 * the `x-csrf-token` header.
 */

export const email = z
  .string()
  .trim()
  .toLowerCase()
  .max(254)
  .email('must be an e-mail address')
  .describe('e-mail');
export const password = z
  .string()
  .min(12, 'must be at least 12 characters')
  .max(256, 'must be at most 256 characters')
  .describe('password (12–256 characters)');
const name = z.string().trim().min(1, 'must not be empty').max(120, 'must be at most 120 characters');
export const contractId = z
  .string()
  .regex(/^C[0-9A-HJKMNP-TV-Z]{12}$/, 'must be a contract id (C and 12 characters)')
  .describe('contract id');
export const planId = z
  .string()
  .regex(/^[a-z0-9-]{1,40}$/, 'must be a plan id (lower-case letters, digits, hyphens)')
  .describe('plan id, from GET /api/v1/plans');

export const AccountKind = z.enum(['owner', 'operator']);

export const Account = z.object({ id: z.string(), email, name: z.string(), kind: AccountKind }).strict();

/** What a signed-in browser holds: the account and the CSRF token to echo on state-changing requests. */
export const Session = z.object({ account: Account, csrfToken: z.string().min(32) }).strict();

export const Plan = z
  .object({
    id: planId,
    name: z.string(),
    description: z.string(),
    monthlyPricePerDevice: z
      .object({ amount: z.string().regex(/^\d+\.\d{2}$/), currency: z.string().length(3) })
      .strict(),
    dataPerMonthMb: z.number().int().nonnegative(),
    maxDevices: z.number().int().positive(),
  })
  .strict();

/** A device's state as the portal last heard it from the credentialing server's event feed. */
export const PortalDeviceState = z.enum([
  'pending', // accepted by the portal, not yet registered at the credentialing server
  ...DeviceFeedState.options, // from the credentialing server's event feed
  'rejected', // refused at registration (e.g. already registered under another contract)
]);

/** Devices per state; every state present (0 when none). */
export const StateTotals = z.record(PortalDeviceState, z.number().int().nonnegative());

export const Billing = z
  .object({
    name: name.describe('billing name'),
    address: z.string().trim().min(1, 'must not be empty').max(400, 'must be at most 400 characters'),
    country: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166-1 alpha-2 country code'),
    email: email.describe('billing e-mail'),
    vatId: z.string().trim().max(20).optional(),
  })
  .strict();

export const PaymentStatus = z.enum(['authorised', 'declined']);

export const Contract = z
  .object({
    id: contractId,
    ownerId: z.string(),
    ownerEmail: email,
    planId,
    billing: Billing,
    payment: z
      .object({ status: PaymentStatus, reference: z.string(), reason: z.string().nullable(), at: timestamp })
      .strict(),
    createdAt: timestamp,
    totals: StateTotals,
    devices: z.number().int().nonnegative(),
  })
  .strict();

export const Device = z
  .object({
    dsimId,
    contractId,
    state: PortalDeviceState,
    /** Why it failed, expired, was revoked or rejected (a SIMCRED_ code and text). */
    reason: z.string().nullable(),
    imsi: imsi.nullable(),
    updatedAt: timestamp,
  })
  .strict();

export const Rejection = z
  .object({
    line: z.number().int().positive().optional(),
    dsimId: z.string().optional(),
    code: z.string(),
    message: z.string(),
  })
  .strict();

export const Upload = z
  .object({
    id: z.string(),
    contractId,
    fileName: z.string().nullable(),
    state: z.enum(['running', 'done', 'failed']),
    rows: z.number().int().nonnegative(),
    accepted: z.number().int().nonnegative(),
    rejectedCount: z.number().int().nonnegative(),
    /** The first 1,000 rejected rows, by line number. */
    rejected: z.array(Rejection),
    startedAt: timestamp,
    finishedAt: timestamp.nullable(),
  })
  .strict();

export const TimelineEvent = z
  .object({ at: timestamp, role: z.string(), event: z.string(), detail: z.string().nullable() })
  .strict();

const Page = <T extends z.ZodType>(item: T) =>
  z
    .object({ items: z.array(item), next: z.string().nullable().describe('cursor of the next page') })
    .strict();

const pageQuery = {
  after: z.string().max(64).optional().describe('cursor from the previous page'),
  // Query values are strings: decimal digits only, as the event feed's (src/protocol/credentialing.ts).
  limit: z
    .string()
    .regex(/^([1-9][0-9]?|[1-4][0-9]{2}|500)$/, 'must be a whole number from 1 to 500')
    .transform(Number)
    .default(100)
    .describe('most items in one page, 1 to 500 (default 100)'),
};

const OWNER = ACCOUNT('owner');
const OPERATOR = ACCOUNT('operator');
const ANY_ACCOUNT = ACCOUNT('owner', 'operator');

// --- Accounts and sessions ---------------------------------------------------------------------

export const signUp = defineRoute({
  id: 'portal.signUp',
  role: 'portal',
  steps: '0a',
  method: 'POST',
  path: '/api/v1/accounts',
  caller: PUBLIC,
  summary: 'Create an owner account and sign in (sets the session cookie).',
  body: z.object({ email, password, name: name.describe('your name or company') }).strict(),
  response: Session,
  errors: ['SIMCRED_ACCOUNT_EXISTS', 'SIMCRED_RATE_LIMITED'],
});

export const logIn = defineRoute({
  id: 'portal.logIn',
  role: 'portal',
  steps: '0a',
  method: 'POST',
  path: '/api/v1/session',
  caller: PUBLIC,
  summary:
    'Sign in (owner or operator account); sets the session cookie. Attempts are rate-limited per account and per client address.',
  body: z.object({ email, password: z.string().min(1).max(256) }).strict(),
  response: Session,
  errors: ['SIMCRED_LOGIN_FAILED', 'SIMCRED_RATE_LIMITED'],
});

export const currentSession = defineRoute({
  id: 'portal.currentSession',
  role: 'portal',
  steps: '0a',
  method: 'GET',
  path: '/api/v1/session',
  caller: ANY_ACCOUNT,
  summary: 'The signed-in account and its CSRF token.',
  response: Session,
  errors: [],
});

export const logOut = defineRoute({
  id: 'portal.logOut',
  role: 'portal',
  steps: '0a',
  method: 'DELETE',
  path: '/api/v1/session',
  caller: ANY_ACCOUNT,
  summary: 'Sign out: the session ends on the server and its cookie is cleared.',
  response: z.object({ ok: z.literal(true) }).strict(),
  errors: [],
});

export const listPlans = defineRoute({
  id: 'portal.listPlans',
  role: 'portal',
  steps: '0a',
  method: 'GET',
  path: '/api/v1/plans',
  caller: PUBLIC,
  summary: "The operator's catalogue of plans (configuration).",
  response: z.object({ plans: z.array(Plan) }).strict(),
  readsDatabase: false,
  errors: [],
});

// --- Owner: contracts and devices ---------------------------------------------------------------

export const createContract = defineRoute({
  id: 'portal.createContract',
  role: 'portal',
  steps: '0a',
  method: 'POST',
  path: '/api/v1/contracts',
  caller: OWNER,
  summary:
    'Sign a contract: a plan, billing details and a payment reference. The payment is authorised at once; a declined payment is recorded on the contract and blocks adding devices until a new payment is authorised.',
  body: z.object({ planId, billing: Billing, paymentReference: z.string().trim().min(1).max(64) }).strict(),
  response: Contract,
  errors: ['SIMCRED_PLAN_UNKNOWN'],
});

export const retryPayment = defineRoute({
  id: 'portal.retryPayment',
  role: 'portal',
  steps: '0a',
  method: 'POST',
  path: '/api/v1/contracts/:contractId/payment',
  caller: OWNER,
  summary: 'Authorise a new payment for a contract whose payment was declined.',
  params: z.object({ contractId }).strict(),
  body: z.object({ paymentReference: z.string().trim().min(1).max(64) }).strict(),
  response: Contract,
  errors: ['SIMCRED_CONTRACT_UNKNOWN'],
});

export const listContracts = defineRoute({
  id: 'portal.listContracts',
  role: 'portal',
  steps: '0a',
  method: 'GET',
  path: '/api/v1/contracts',
  caller: ANY_ACCOUNT,
  summary:
    "An owner's own contracts, or (operator) every contract; `q` filters by contract id, owner e-mail, DSIM_ID or IMSI.",
  query: z.object({ ...pageQuery, q: z.string().trim().max(64).optional() }).strict(),
  response: Page(Contract),
  errors: [],
});

export const getContract = defineRoute({
  id: 'portal.getContract',
  role: 'portal',
  steps: '0a',
  method: 'GET',
  path: '/api/v1/contracts/:contractId',
  caller: ANY_ACCOUNT,
  summary:
    "One contract with its totals per state. Another owner's contract is SIMCRED_CONTRACT_UNKNOWN (404).",
  params: z.object({ contractId }).strict(),
  response: Contract,
  errors: ['SIMCRED_CONTRACT_UNKNOWN'],
});

export const listDevices = defineRoute({
  id: 'portal.listDevices',
  role: 'portal',
  steps: '0a–12',
  method: 'GET',
  path: '/api/v1/contracts/:contractId/devices',
  caller: ANY_ACCOUNT,
  summary: "A contract's devices with their last known state, in DSIM_ID order, a page at a time.",
  params: z.object({ contractId }).strict(),
  query: z.object({ ...pageQuery, state: PortalDeviceState.optional() }).strict(),
  response: Page(Device),
  errors: ['SIMCRED_CONTRACT_UNKNOWN'],
});

export const addDevices = defineRoute({
  id: 'portal.addDevices',
  role: 'portal',
  steps: '0a, 0b',
  method: 'POST',
  path: '/api/v1/contracts/:contractId/devices',
  caller: OWNER,
  summary:
    'Add up to 100 devices typed in, and register them at once. Each is accepted or rejected on its own (a duplicate, a device of another contract, a delivered device): the good ones are registered, the bad ones listed with their reason.',
  params: z.object({ contractId }).strict(),
  body: z.object({ dsimIds: z.array(z.string().max(64)).min(1).max(100) }).strict(),
  response: z.object({ accepted: z.array(dsimId), rejected: z.array(Rejection) }).strict(),
  errors: ['SIMCRED_CONTRACT_UNKNOWN', 'SIMCRED_PAYMENT_DECLINED', 'SIMCRED_PLAN_LIMIT'],
});

export const uploadDevices = defineRoute({
  id: 'portal.uploadDevices',
  role: 'portal',
  steps: '0a, 0b',
  method: 'POST',
  path: '/api/v1/contracts/:contractId/uploads',
  caller: OWNER,
  summary:
    'Upload a device list of any size as CSV (text/csv, a header row with a dsim_id column) or NDJSON (application/x-ndjson, {"dsimId": …} per line), streamed and validated row by row. Good rows are registered, bad rows reported with their line number and reason; the answer is the finished upload.',
  params: z.object({ contractId }).strict(),
  query: z.object({ fileName: z.string().max(200).optional() }).strict(),
  bodyFormat: 'binary',
  media: { request: 'text/csv, application/x-ndjson', response: 'application/json' },
  response: Upload,
  errors: [
    'SIMCRED_CONTRACT_UNKNOWN',
    'SIMCRED_PAYMENT_DECLINED',
    'SIMCRED_UPLOAD_INVALID',
    'SIMCRED_PLAN_LIMIT',
  ],
});

export const listUploads = defineRoute({
  id: 'portal.listUploads',
  role: 'portal',
  steps: '0a',
  method: 'GET',
  path: '/api/v1/uploads',
  caller: ANY_ACCOUNT,
  summary: "Uploads, newest first: an owner's own, or (operator) all; running ones show their progress.",
  query: z.object(pageQuery).strict(),
  response: Page(Upload),
  errors: [],
});

export const cancelDevice = defineRoute({
  id: 'portal.cancelDevice',
  role: 'portal',
  steps: '0b–9',
  method: 'DELETE',
  path: '/api/v1/contracts/:contractId/devices/:dsimId',
  caller: ANY_ACCOUNT,
  summary:
    'Cancel a device before delivery: its registration is revoked at the credentialing server. A delivered device is SIMCRED_REGISTRATION_USED.',
  params: z.object({ contractId, dsimId }).strict(),
  response: Device,
  errors: ['SIMCRED_CONTRACT_UNKNOWN', 'SIMCRED_DEVICE_UNKNOWN', 'SIMCRED_REGISTRATION_USED'],
});

// --- Operator console ---------------------------------------------------------------------------

export const Funnel = z
  .object({
    totals: StateTotals,
    contracts: z.number().int().nonnegative(),
    devices: z.number().int().nonnegative(),
    at: timestamp,
  })
  .strict();

export const fleetFunnel = defineRoute({
  id: 'portal.fleetFunnel',
  role: 'portal',
  steps: '0a–12',
  method: 'GET',
  path: '/api/v1/funnel',
  caller: OPERATOR,
  summary: 'Devices per state over every contract.',
  response: Funnel,
  errors: [],
});

export const deviceTimeline = defineRoute({
  id: 'portal.deviceTimeline',
  role: 'portal',
  steps: '0a–12',
  method: 'GET',
  path: '/api/v1/devices/:dsimId',
  caller: OPERATOR,
  summary:
    'A device, its contract and the timeline of its audit events across roles (from the credentialing server).',
  params: z.object({ dsimId }).strict(),
  response: z.object({ device: Device, ownerEmail: email, timeline: z.array(TimelineEvent) }).strict(),
  errors: ['SIMCRED_DEVICE_UNKNOWN'],
});

/**
 * GET /api/v1/stream: server-sent events (text/event-stream), for any signed-in account, scoped to
 * what it may see. Events: `device` (a Device that changed), `funnel` (operator: a Funnel, at most a
 * few times a second), `upload` (an Upload's progress). Declared here for the docs; mounted by hand
 * since its answer is a stream.
 */
export const eventStream = defineRoute({
  id: 'portal.eventStream',
  role: 'portal',
  steps: '0a–12',
  method: 'GET',
  path: '/api/v1/stream',
  caller: ANY_ACCOUNT,
  summary:
    'Live updates as server-sent events: `device` (a device whose state changed), `upload` (progress), and for operators `funnel` (totals). No per-device polling.',
  bodyFormat: 'binary',
  media: { response: 'text/event-stream' },
  response: z.string(),
  errors: [],
});

export const portalRoutes = [
  signUp,
  logIn,
  currentSession,
  logOut,
  listPlans,
  createContract,
  retryPayment,
  listContracts,
  getContract,
  listDevices,
  addDevices,
  uploadDevices,
  listUploads,
  cancelDevice,
  fleetFunnel,
  deviceTimeline,
  eventStream,
] as const;
