import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { SimcredError } from '../errors/index.js';

/** Defaults of the embedded setup: every role on loopback, SQLite under one data folder. */
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_DATA_DIR = 'data';
export const DEFAULT_PORTS = {
  credentialing: 7401,
  registration: [7411, 7412],
  ocsp: 7420,
  hss: 7430,
  provisioning: [7441, 7442],
  phlr: 7450,
  portal: 7460,
} as const;
/** The portal's catalogue when the config names none. */
export const DEFAULT_PORTAL_PLANS = [
  {
    id: 'retail',
    name: 'Retail',
    description: 'One phone or tablet, or a handful.',
    monthlyPricePerDevice: '4.90',
    currency: 'EUR',
    dataPerMonthMb: 10_240,
    maxDevices: 10,
  },
  {
    id: 'm2m-starter',
    name: 'M2M starter',
    description: 'A pilot fleet of meters or trackers.',
    monthlyPricePerDevice: '0.90',
    currency: 'EUR',
    dataPerMonthMb: 50,
    maxDevices: 1_000,
  },
  {
    id: 'm2m-fleet',
    name: 'M2M fleet',
    description: 'Fleets of any size, uploaded as CSV or NDJSON.',
    monthlyPricePerDevice: '0.40',
    currency: 'EUR',
    dataPerMonthMb: 20,
    maxDevices: 10_000_000,
  },
] as const;
export const DEFAULT_REGISTRATION_TTL_SECONDS = 30 * 24 * 3600;
export const DEFAULT_OCSP_CLOCK_SKEW_SECONDS = 300;

/** The roles that listen (each may have its own address: config.listen). */
const LISTENING = {
  credentialing: 'the credentialing server',
  registration: 'the registration servers',
  ocsp: 'the OCSP responder',
  hss: 'the HSS',
  provisioning: 'the provisioning servers',
  phlr: 'the preliminary HLR',
  portal: 'the contract portal',
} as const;
export const LISTEN_ROLES = Object.keys(LISTENING) as (keyof typeof LISTENING)[];
export type ListenRole = keyof typeof LISTENING;

/** A signing key: a `pkcs11:` URI (RFC 7512) of a key in a token, or a PEM file's path. */
const keyReference = z
  .string()
  .min(1)
  .refine((value) => !/^pkcs11:/i.test(value) || !/[?&]pin-value=/i.test(value), {
    message: 'a pkcs11: URI must not carry pin-value; use pin-source=file:PATH or SIMCRED_PKCS11_PIN',
  });

/** 0 picks any free port (tests). */
const port = z.number().int().min(0).max(65535);
const hexAmf = z.string().regex(/^[0-9a-fA-F]{4}$/);
/** A peer's base URL; the paths are appended to it, so a trailing slash is dropped. */
const httpsUrl = z.url({ protocol: /^https$/ }).transform((url) => url.replace(/\/+$/, ''));

/** Default abuse limits (docs/abuse-limits.md): generous per address, tight per identity. */
export const DEFAULT_ABUSE_LIMITS = {
  perAddress: { requests: 30_000, windowSeconds: 60 },
  perIdentity: { requests: 20, windowSeconds: 60 },
  perIdentityAndAddress: { requests: 10, windowSeconds: 60 },
  akaChallenges: { requests: 10, windowSeconds: 60 },
  akaChallengesPerAddress: { requests: 5, windowSeconds: 60 },
} as const;

/** At most `requests` in any `windowSeconds` (a sliding window). */
const windowLimit = (defaults: { requests: number; windowSeconds: number }, description: string) =>
  z
    .object({
      requests: z
        .number()
        .int()
        .min(1)
        .max(100_000_000)
        .default(defaults.requests)
        .describe(`Most requests in the window: ${description}`),
      windowSeconds: z
        .number()
        .int()
        .min(1)
        .max(86_400)
        .default(defaults.windowSeconds)
        .describe('Length of that sliding window (seconds).'),
    })
    .strict()
    .prefault({})
    .describe(description);

// Every leaf carries its meaning in .describe(): docs/configuration.md is generated from it
// (`npm run docs:config`), and a test fails when a leaf has none.
export const configSchema = z
  .object({
    dataDir: z
      .string()
      .min(1)
      .default(DEFAULT_DATA_DIR)
      .describe("Folder holding every role's SQLite file and secrets and, by default, the PKI."),
    pkiDir: z
      .string()
      .min(1)
      .optional()
      .describe('PKI folder made by `simcred pki init`; defaults to `<dataDir>/pki`.'),
    host: z
      .string()
      .min(1)
      .default(DEFAULT_HOST)
      .describe('Address every role listens on, and the host of the URLs the roles give each other.'),
    ports: z
      .object({
        credentialing: port
          .default(DEFAULT_PORTS.credentialing)
          .describe('Credentialing server (HTTPS): operator API, device steps 3–4 and 12, peers 8–9.'),
        registration: z
          .array(port)
          .min(1)
          .default([...DEFAULT_PORTS.registration])
          .describe('Registration servers (HTTPS), one port per instance: step 0b pushes, step 2 lookups.'),
        ocsp: port
          .default(DEFAULT_PORTS.ocsp)
          .describe('OCSP responder (plain HTTP: RFC 6960 responses are signed).'),
        hss: port
          .default(DEFAULT_PORTS.hss)
          .describe(
            'HSS (HTTPS): credential packages for the credentialing server (step 5), device attach (step 12).',
          ),
        provisioning: z
          .array(port)
          .min(1)
          .default([...DEFAULT_PORTS.provisioning])
          .describe(
            'Provisioning servers (HTTPS), one port per instance: referrals (step 6), delivery (7–10).',
          ),
        phlr: port
          .default(DEFAULT_PORTS.phlr)
          .describe('Preliminary HLR (HTTPS): AKA on preliminary credentials and access grants (step 1).'),
        portal: port
          .default(DEFAULT_PORTS.portal)
          .describe(
            'Contract portal (HTTPS): the browser front end and its API (docs/portal.md); a client of the credentialing server.',
          ),
      })
      .strict()
      .prefault({}),
    listen: z
      .object(
        Object.fromEntries(
          LISTEN_ROLES.map((role) => [
            role,
            z
              .string()
              .min(1)
              .optional()
              .describe(
                `Address ${LISTENING[role]} listen${role === 'registration' || role === 'provisioning' ? '' : 's'} on (default: \`host\`); each instance behind a load balancer has its own.`,
              ),
          ]),
        ) as Record<ListenRole, z.ZodOptional<z.ZodString>>,
      )
      .strict()
      .prefault({})
      .describe('Listen address per role, when a role does not listen on `host`.'),
    urls: z
      .object({
        credentialing: httpsUrl
          .optional()
          .describe(
            "Public URL of the credentialing server (a load balancer's): the route pushed to registration servers for devices, and what the portal and `simcred operator` call.",
          ),
        registration: z
          .array(httpsUrl)
          .min(1)
          .optional()
          .describe(
            'Public URL of each registration server, in the order of `ports.registration` (same length).',
          ),
        provisioning: z
          .array(httpsUrl)
          .min(1)
          .optional()
          .describe(
            'Public URL of each provisioning server, in the order of `ports.provisioning` (same length): what devices are referred to and where the credentialing server sends referrals.',
          ),
        hss: httpsUrl.optional().describe('Public URL of the HSS, which the credentialing server calls.'),
        phlr: httpsUrl.optional().describe('Public URL of the preliminary HLR.'),
        ocsp: z
          .url({ protocol: /^https?$/ })
          .transform((url) => url.replace(/\/+$/, ''))
          .optional()
          .describe('Public URL of the OCSP responder, which the credentialing server asks.'),
        portal: httpsUrl.optional().describe('Public URL of the contract portal.'),
      })
      .strict()
      .prefault({})
      .describe(
        "Where the roles reach each other when that is not `https://<listen address>:<port>`: each role's public URL, e.g. a load balancer's in front of several instances.",
      ),
    database: z
      .discriminatedUnion('kind', [
        z
          .object({
            kind: z.literal('sqlite').describe('One SQLite file per role under `dataDir`.'),
          })
          .strict(),
        z
          .object({
            kind: z.literal('postgres').describe('One PostgreSQL database, each role in its own schema.'),
            url: z.string().min(1).describe('PostgreSQL connection URL (postgres://user:password@host/db).'),
          })
          .strict(),
      ])
      .default({ kind: 'sqlite' })
      .describe("The roles' store."),
    registration: z
      .object({
        ttlSeconds: z
          .number()
          .int()
          .positive()
          .default(DEFAULT_REGISTRATION_TTL_SECONDS)
          .describe('Lifetime of a registration (step 0b) before a device must have used it.'),
        challengeSecret: z
          .string()
          .optional()
          .describe(
            'Key of the stateless lookup challenges (32 bytes, hex/base64), shared by every registration instance; generated into `<dataDir>/registration/secrets.json` when absent.',
          ),
      })
      .strict()
      .prefault({}),
    credentialing: z
      .object({
        provisioningPolicy: z
          .enum(['hash', 'round-robin', 'first'])
          .default('hash')
          .describe(
            'Which provisioning server a device is referred to (step 6): hash of its DSIM_ID (stable across retries and instances), round-robin (per instance), or always the first (the others standbys).',
          ),
        sessionTtlSeconds: z
          .number()
          .int()
          .min(10)
          .max(3600)
          .default(120)
          .describe('How long a session opened at step 3 waits for its proof (step 4).'),
        ticketTtlSeconds: z
          .number()
          .int()
          .min(10)
          .max(86400)
          .default(600)
          .describe('Lifetime of the one-time ticket of a referral (step 6).'),
        packageFormats: z
          .array(z.enum(['jose', 'xml']))
          .min(1)
          .max(2)
          .refine((formats) => new Set(formats).size === formats.length, 'each format at most once')
          .default(['jose', 'xml'])
          .describe(
            'Credential package formats this deployment seals, in order of preference: each device gets the first it opens (its factory image says which; docs/crypto.md §6b).',
          ),
        authorisationHook: z
          .object({
            url: z
              .url({ protocol: /^https$/ })
              .describe(
                "The operator's hook URL (HTTPS); POSTed an AuthorisationRequest per device at step 4.",
              ),
            timeoutMs: z
              .number()
              .int()
              .min(100)
              .max(30_000)
              .default(2000)
              .describe('How long the hook has to answer; later is a refusal for now (503, fail closed).'),
            caFile: z
              .string()
              .optional()
              .describe(
                "PEM file of the CA(s) that issued the hook's server certificate (default: the operator root).",
              ),
            plans: z
              .array(z.string())
              .optional()
              .describe(
                'The plans the hook may choose; a plan outside this list is a failed hook (default: any).',
              ),
          })
          .strict()
          .optional()
          .describe(
            "The operator's authorisation hook (docs/protocol.md): asked after every check of step 4 whether the device may have a credential, and under which plan. None by default.",
          ),
      })
      .strict()
      .prefault({}),
    hss: z
      .object({
        plmn: z
          .string()
          .regex(/^\d{5,6}$/)
          .default('00102')
          .describe("MCC+MNC of the operator's IMSI range (001-02, a test network, by default)."),
        firstMsin: z.number().int().min(0).default(1).describe('First MSIN the HSS allocates.'),
        capacity: z
          .number()
          .int()
          .positive()
          .default(1_000_000_000)
          .describe('Number of IMSIs in the range; firstMsin + capacity − 1 must fit the MSIN digits.'),
        amf: hexAmf.default('8000').describe('AMF of the downloaded subscriptions (4 hex digits).'),
        // At most 30 days: what the package format accepts (MAX_PACKAGE_TTL_SECONDS).
        packageTtlSeconds: z
          .number()
          .int()
          .positive()
          .max(30 * 24 * 3600)
          .default(7 * 24 * 3600)
          .describe('Lifetime of a credential package (its exp), at most 30 days.'),
        imsiQuarantineSeconds: z
          .number()
          .int()
          .min(0)
          .default(30 * 24 * 3600)
          .describe(
            'How long an IMSI released by a revocation or a deletion is kept from every new subscriber (30 days by default); after that it is allocated again before fresh IMSIs of the range.',
          ),
        kek: z
          .string()
          .optional()
          .describe(
            "Key-encryption key of K/OPc at rest: 32 bytes (hex/base64), or an RFC 7512 `pkcs11:` URI naming a sensitive, non-extractable AES-256 key in a PKCS#11 token (e.g. `pkcs11:token=simcred;object=simcred-hss-kek`; PIN from `SIMCRED_PKCS11_PIN`, `SIMCRED_PKCS11_PIN_FILE` or the URI's pin-source) that seals and opens every K/OPc in the token; generated into `<dataDir>/hss/secrets.json` when absent. docs/crypto.md §7.",
          ),
        op: z
          .string()
          .regex(/^([0-9a-fA-F]{32}|pkcs11:.*)$/)
          .optional()
          .describe(
            "The operator's Milenage OP (16 bytes, hex), from which each OPc is derived, or a `pkcs11:` URI naming a private 16-byte data object in a token (e.g. `pkcs11:token=simcred;object=simcred-hss-op;type=data`), read once at start; generated into `<dataDir>/hss/secrets.json` when absent.",
          ),
      })
      .strict()
      // Every IMSI of the range must be 15 digits: PLMN + MSIN of 15 − len(PLMN) digits.
      .refine((hss) => hss.firstMsin + hss.capacity - 1 < 10 ** (15 - hss.plmn.length), {
        message: 'firstMsin + capacity − 1 must fit the MSIN digits left by the PLMN (IMSIs are 15 digits)',
        path: ['capacity'],
      })
      .prefault({}),
    phlr: z
      .object({
        grantTtlSeconds: z
          .number()
          .int()
          .min(1)
          .max(86400)
          .default(600)
          .describe('Lifetime of an access grant (DESIGN §2 step 1: short-lived, registration only).'),
        grantClockSkewSeconds: z
          .number()
          .int()
          .min(0)
          .max(600)
          .default(30)
          .describe("Clock skew registration servers allow when checking a grant's iat/exp."),
        challengeTtlSeconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(60)
          .describe('How long a PHLR challenge waits for its RES.'),
        amf: hexAmf.default('8000').describe("AMF of the PHLR's authentication vectors (4 hex digits)."),
        subscribersFile: z
          .string()
          .min(1)
          .optional()
          .describe(
            "Where the factory's preliminary subscriber list is read; defaults to `<pkiDir>/phlr/subscribers.ndjson`.",
          ),
        kek: z
          .string()
          .optional()
          .describe(
            'Key-encryption key for K_PIMSI/OPc_PIMSI at rest: 32 bytes (hex/base64), or a `pkcs11:` URI naming a non-extractable AES-256 key in a PKCS#11 token, as `hss.kek`; generated into `<dataDir>/phlr/secrets.json` when absent.',
          ),
      })
      .strict()
      .prefault({}),
    ocsp: z
      .object({
        clockSkewSeconds: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(DEFAULT_OCSP_CLOCK_SKEW_SECONDS)
          .describe("Clock skew the OCSP client allows on a response's thisUpdate/nextUpdate window."),
        timeoutMs: z
          .number()
          .int()
          .positive()
          .default(5000)
          .describe('How long the OCSP client waits for a responder (ms).'),
        revocationCheckMs: z
          .number()
          .int()
          .min(0)
          .max(60_000)
          .default(200)
          .describe(
            'The responder re-reads revocations at most this often (ms): what it serves is at most this stale; 0 reads on every request.',
          ),
      })
      .strict()
      .prefault({}),
    portal: z
      .object({
        plans: z
          .array(
            z
              .object({
                id: z
                  .string()
                  .regex(/^[a-z0-9-]{1,40}$/)
                  .describe('Plan id (lower-case letters, digits, hyphens).'),
                name: z.string().min(1).max(80).describe('Plan name shown to owners.'),
                description: z.string().max(400).default('').describe('One line shown under the name.'),
                monthlyPricePerDevice: z
                  .string()
                  .regex(/^\d+\.\d{2}$/)
                  .describe('Price per device and month, e.g. "1.50".'),
                currency: z
                  .string()
                  .regex(/^[A-Z]{3}$/)
                  .default('EUR')
                  .describe('ISO 4217 currency of the price.'),
                dataPerMonthMb: z
                  .number()
                  .int()
                  .nonnegative()
                  .describe('Data allowance per device and month (MB).'),
                maxDevices: z
                  .number()
                  .int()
                  .positive()
                  .describe('Most devices one contract of this plan may hold.'),
              })
              .strict(),
          )
          .min(1)
          .default(DEFAULT_PORTAL_PLANS.map((p) => ({ ...p })))
          .describe("The operator's catalogue of plans owners choose from."),
        sessionTtlSeconds: z
          .number()
          .int()
          .min(60)
          .max(30 * 24 * 3600)
          .default(12 * 3600)
          .describe('Lifetime of a portal sign-in session (the session cookie).'),
        loginAttempts: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(5)
          .describe('Failed sign-ins allowed per e-mail address and per client address within the window.'),
        loginWindowSeconds: z
          .number()
          .int()
          .min(1)
          .max(86400)
          .default(15 * 60)
          .describe('The window of the sign-in rate limit; a locked-out client may try again after it.'),
        uploadLimitBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024 * 1024)
          .default(16 * 1024 * 1024)
          .describe(
            'Largest device file an owner may upload (bytes); a larger one is SIMCRED_BODY_TOO_LARGE.',
          ),
        registrationServer: z
          .string()
          .url()
          .optional()
          .describe(
            'The registration server the portal registers devices with when a file names none (a registration_server column); defaults to the first configured registration server.',
          ),
        operators: z
          .array(
            z
              .object({
                email: z.string().email().describe('Operator sign-in e-mail.'),
                passwordFile: z.string().min(1).describe('File holding the password (first line).'),
                name: z.string().min(1).max(120).default('Operator').describe('Name shown in the console.'),
              })
              .strict(),
          )
          .default([])
          .describe('Operator console accounts created (or whose password is reset) when the portal starts.'),
      })
      .strict()
      .prefault({}),
    operations: z
      .object({
        metricsHost: z
          .string()
          .min(1)
          .default(DEFAULT_HOST)
          .describe(
            "Address of each process's metrics listener (GET /metrics, /livez, /readyz; plain HTTP, docs/operations.md): loopback unless a scraper elsewhere must reach it.",
          ),
        metricsPort: port
          .default(0)
          .describe(
            'Port of the metrics listener; 0 picks a free one (`simcred up --json` lists it under `metrics`). Each process of `serve` needs its own.',
          ),
        shutdownGraceMs: z
          .number()
          .int()
          .min(0)
          .max(600_000)
          .default(10_000)
          .describe(
            'On SIGTERM, how long in-flight requests may take to finish before the process closes anyway (ms).',
          ),
        readinessTimeoutMs: z
          .number()
          .int()
          .min(10)
          .max(60_000)
          .default(2000)
          .describe('How long /readyz waits for the store or a required peer to answer (ms).'),
        readinessCacheMs: z
          .number()
          .int()
          .min(0)
          .max(60_000)
          .default(1000)
          .describe('How long a /readyz answer is reused, so probes do not load stores and peers (ms).'),
      })
      .strict()
      .prefault({})
      .describe('Metrics, health endpoints and shutdown (docs/operations.md).'),
    abuse: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'The rate limits of the device-facing routes; false counts and refuses nothing (the time, size and connection bounds below stay).',
          ),
        perAddress: windowLimit(
          DEFAULT_ABUSE_LIMITS.perAddress,
          'Requests to one device route from one client address (high: a carrier-grade NAT puts a whole fleet behind one address); more is SIMCRED_ADDRESS_RATE_LIMITED.',
        ),
        perIdentity: windowLimit(
          DEFAULT_ABUSE_LIMITS.perIdentity,
          'Requests to one device route naming one DSIM_ID, PIMSI, IMSI or session, from any address (tight: a device makes a few per onboarding); more is SIMCRED_IDENTITY_RATE_LIMITED.',
        ),
        perIdentityAndAddress: windowLimit(
          DEFAULT_ABUSE_LIMITS.perIdentityAndAddress,
          "The same from one client address: below perIdentity, so a stranger at one address cannot use up a device's allowance alone.",
        ),
        akaChallenges: windowLimit(
          DEFAULT_ABUSE_LIMITS.akaChallenges,
          'New AKA challenges and resyncs per PIMSI (PHLR) or IMSI (HSS), which advance its SQN and replace its pending challenge; more is SIMCRED_AKA_THROTTLED.',
        ),
        akaChallengesPerAddress: windowLimit(
          DEFAULT_ABUSE_LIMITS.akaChallengesPerAddress,
          'The same from one client address: below akaChallenges, so the real device still gets its challenge while a stranger at one address is throttled.',
        ),
        denyCacheEntries: z
          .number()
          .int()
          .min(1)
          .max(10_000_000)
          .default(100_000)
          .describe(
            'Refused keys each process remembers until their window frees them, answering 429 without a database round trip.',
          ),
        requestTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(600_000)
          .default(30_000)
          .describe(
            "A device route's request (headers and body) must arrive within this (ms); else 408 SIMCRED_REQUEST_TIMEOUT and the connection closes. Server-to-server routes have no such bound (a streamed batch may take minutes).",
          ),
        headersTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(600_000)
          .default(10_000)
          .describe(
            'The headers of any request must arrive within this (ms); else 408 SIMCRED_REQUEST_TIMEOUT.',
          ),
        idleTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(3_600_000)
          .default(60_000)
          .describe('A connection with no traffic at all for this long is closed (ms).'),
        maxHeaderBytes: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(8 * 1024)
          .describe(
            'Largest request line and headers (bytes); larger is 431 SIMCRED_HEADERS_TOO_LARGE and the connection closes.',
          ),
        deviceBodyLimitBytes: z
          .number()
          .int()
          .min(1024)
          .max(16 * 1024 * 1024)
          .default(64 * 1024)
          .describe(
            "Largest body of a device route (bytes); larger is 413 SIMCRED_BODY_TOO_LARGE. Server-to-server routes keep their role's own limit.",
          ),
        connectionsPerAddress: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(512)
          .describe(
            "Open connections one client address may hold on a role's server; one more is closed at once (0: no cap).",
          ),
      })
      .strict()
      .prefault({})
      .describe(
        'Abuse limits of the routes devices reach without a client certificate (docs/abuse-limits.md): rate limits shared by every instance of a role through its database, and bounds on request time, sizes and connections.',
      ),
    log: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .describe('Lowest level logged (pino levels; JSON lines on stderr).'),
      })
      .strict()
      .prefault({}),
    notify: z
      .object({
        webhooks: z
          .array(
            z
              .object({
                url: z
                  .string()
                  .max(512)
                  .describe(
                    'Where notifications are POSTed (https; http only to loopback unless allowHttp).',
                  ),
                secret: z
                  .string()
                  .min(16)
                  .max(256)
                  .describe(
                    'The signing secret the receiver verifies Simcred-Signature with (never logged).',
                  ),
                orderId: z
                  .string()
                  .regex(/^ord_[A-Za-z0-9_-]{22}$/)
                  .optional()
                  .describe("Only this order's devices (absent: every device)."),
              })
              .strict(),
          )
          .default([])
          .describe(
            'Webhooks declared here, besides those added with `simcred operator webhooks add`: kept in step with the config at each start (one removed from the config is removed with its pending deliveries).',
          ),
        allowHttp: z
          .boolean()
          .default(false)
          .describe(
            'Allow http:// webhook URLs to any host; by default https only, or http to a loopback address.',
          ),
        maxAttempts: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .default(50)
          .describe('A delivery that failed this many times is dead (given up, still listed).'),
        maxAgeSeconds: z
          .number()
          .int()
          .min(1)
          .max(365 * 24 * 3600)
          .default(3 * 24 * 3600)
          .describe('A delivery not acknowledged within this long of its event is dead.'),
        retryBaseMs: z
          .number()
          .int()
          .min(10)
          .max(3_600_000)
          .default(1000)
          .describe('First wait after a failed delivery; it doubles with each failure (with jitter).'),
        retryMaxMs: z
          .number()
          .int()
          .min(10)
          .max(24 * 3_600_000)
          .default(300_000)
          .describe('Longest wait between two attempts of a delivery.'),
        timeoutMs: z
          .number()
          .int()
          .min(100)
          .max(120_000)
          .default(10_000)
          .describe(
            'Timeout of one POST to a webhook (connect, headers, body); a timeout is a failed attempt.',
          ),
        concurrency: z
          .number()
          .int()
          .min(1)
          .max(1024)
          .default(32)
          .describe('Deliveries in flight at once per credentialing process (each a different device).'),
      })
      .strict()
      .prefault({}),
    keys: z
      .object({
        packageSigner: keyReference
          .optional()
          .describe(
            "The package signer's key (it signs every credential package and transfer statement): a `pkcs11:` URI of a key in a PKCS#11 token, or a PEM file; defaults to what `<pkiDir>/pki.json` names. Its certificate stays in the PKI folder and must certify this key.",
          ),
        ocspSigners: z
          .object({
            deviceCa: keyReference
              .optional()
              .describe(
                "The device CA's delegated OCSP signer key: a `pkcs11:` URI or a PEM file; defaults to pki.json's.",
              ),
            operatorCa: keyReference
              .optional()
              .describe(
                "The operator CA's delegated OCSP signer key: a `pkcs11:` URI or a PEM file; defaults to pki.json's.",
              ),
          })
          .strict()
          .prefault({})
          .describe("The OCSP responder's delegated signer keys, one per issuing CA."),
      })
      .strict()
      .prefault({})
      .describe(
        'Where the operator\'s signing keys live (docs/crypto.md, "Keys in a PKCS#11 token"). A `pkcs11:` URI (RFC 7512: token=, object= and/or id=, optional module-path= and pin-source=file:PATH; never pin-value) names a key in a token, which signs there; the PIN comes from pin-source, SIMCRED_PKCS11_PIN_FILE or SIMCRED_PKCS11_PIN, the library from module-path or SIMCRED_PKCS11_MODULE (default Debian\'s SoftHSM). The CA keys are named in pki.json (`simcred pki init --pkcs11`).',
      ),
    trust: z
      .object({
        manufacturers: z
          .array(
            z
              .object({
                rootFile: z.string().min(1).describe("PEM file of another manufacturer's root certificate."),
                ocspUrl: z
                  .string()
                  .max(512)
                  .regex(/^https?:\/\/[^\s]+$/)
                  .describe('The OCSP responder that answers for the device CAs under that root.'),
              })
              .strict(),
          )
          .default([])
          .describe(
            "Manufacturer roots trusted besides the PKI folder's own (devices transferred from another operator, or bought from another maker): the registration and credentialing servers accept device chains to them, and the credentialing server checks such devices at the OCSP responder named.",
          ),
        phlrCertificateFiles: z
          .array(z.string().min(1))
          .default([])
          .describe(
            "PEM files of other preliminary HLRs' certificates whose access grants the registration servers accept (the network a transferred device reaches on its preliminary credentials).",
          ),
      })
      .strict()
      .prefault({})
      .describe('Trust besides the PKI folder (docs/architecture.md, "Operator change").'),
  })
  .strict()
  // A public URL per server: as many as the ports that say how many servers there are.
  .superRefine((config, ctx) => {
    for (const role of ['registration', 'provisioning'] as const) {
      const urls = config.urls[role];
      if (urls && urls.length !== config.ports[role].length) {
        ctx.addIssue({
          code: 'custom',
          path: ['urls', role],
          message: `${urls.length} URLs for ${config.ports[role].length} ${role} servers (ports.${role}): one per server`,
        });
      }
    }
  });

export type SimcredConfig = z.infer<typeof configSchema> & { pkiDir: string };

/**
 * Loads the typed config: defaults, then the JSON file (if any), then SIMCRED_* environment overrides.
 * An override names a field path with `__` between levels, e.g. SIMCRED_PORTS__OCSP=9000 or
 * SIMCRED_LOG__LEVEL=debug; a string field takes the value as given, any other field parses it as JSON
 * when it looks like JSON.
 * Every invalid field is reported at once, by path.
 *
 * @example
 *   const config = loadConfig({ file: 'simcred.json', env: process.env, overrides: { dataDir: 'demo' } });
 */
export function loadConfig(
  options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> } = {},
): SimcredConfig {
  let raw: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new SimcredError(
        missing ? 'SIMCRED_FILE_NOT_FOUND' : 'SIMCRED_IO',
        `cannot read config file ${options.file}: ${missing ? 'no such file' : (err as Error).message}`,
      );
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new SimcredError(
        'SIMCRED_CONFIG_INVALID',
        `cannot read config file ${options.file}: ${(err as Error).message}`,
      );
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `config file ${options.file} must hold a JSON object`);
    }
  }
  for (const [name, value] of Object.entries(options.env ?? {})) {
    const path = envVariablePath(name);
    if (!path || value === undefined) continue;
    setPath(raw, path, stringFields().has(path.join('.')) ? parseString(value) : parseValue(value));
  }
  Object.assign(raw, options.overrides ?? {});
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new SimcredError('SIMCRED_CONFIG_INVALID', `invalid config: ${fields.join('; ')}`);
  }
  const dataDir = resolve(parsed.data.dataDir);
  return { ...parsed.data, dataDir, pkiDir: resolve(parsed.data.pkiDir ?? join(dataDir, 'pki')) };
}

const ENV_PREFIX = 'SIMCRED_';
/** SIMCRED_* variables that are not config fields (the PKCS#11 PIN and library are read where a token is opened, src/keys/pkcs11-token.ts). */
const NOT_CONFIG = new Set([
  'SIMCRED_DEBUG',
  'SIMCRED_PKCS11_PIN',
  'SIMCRED_PKCS11_PIN_FILE',
  'SIMCRED_PKCS11_MODULE',
]);

/**
 * The environment variable that overrides a config field: SIMCRED_ then the path's segments in
 * upper snake case, joined by `__`.
 *
 * @example
 *   envVariableName(['registration', 'ttlSeconds']); // 'SIMCRED_REGISTRATION__TTL_SECONDS'
 */
export function envVariableName(path: readonly string[]): string {
  return ENV_PREFIX + path.map((s) => s.replace(/([A-Z])/g, '_$1').toUpperCase()).join('__');
}

/**
 * The config field path a SIMCRED_* variable names (what loadConfig reads), or undefined for any
 * other variable.
 *
 * @example
 *   envVariablePath('SIMCRED_PORTS__OCSP'); // ['ports', 'ocsp']
 */
export function envVariablePath(name: string): string[] | undefined {
  if (!name.startsWith(ENV_PREFIX) || NOT_CONFIG.has(name)) return undefined;
  return name.slice(ENV_PREFIX.length).split('__').map(camelCase);
}

function camelCase(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

let stringFieldPaths: Set<string> | undefined;

/**
 * The dotted paths of the fields that hold strings. Their environment values are strings as given,
 * so SIMCRED_HSS__AMF=8000 is the AMF "8000", not the number 8000.
 */
function stringFields(): Set<string> {
  if (stringFieldPaths) return stringFieldPaths;
  type Node = { type?: string; properties?: Record<string, Node>; oneOf?: Node[] };
  const found = new Set<string>();
  const walk = (node: Node, path: string[]) => {
    if (node.type === 'string') found.add(path.join('.'));
    for (const [name, child] of Object.entries(node.properties ?? {})) walk(child, [...path, name]);
    for (const branch of node.oneOf ?? []) walk(branch, path);
  };
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Node, []);
  return (stringFieldPaths = found);
}

/** A string field's value: as given, or the string a JSON string literal ("…") holds. */
function parseString(value: string): unknown {
  if (!value.startsWith('"')) return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

function parseValue(value: string): unknown {
  // Long digit strings (keys in hex) stay strings; JSON only for what clearly is JSON.
  if (!/^([[{"]|true$|false$|null$|-?\d{1,15}(\.\d+)?$)/.test(value)) return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}
