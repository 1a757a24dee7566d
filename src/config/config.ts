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
export const DEFAULT_REGISTRATION_TTL_SECONDS = 30 * 24 * 3600;
export const DEFAULT_OCSP_CLOCK_SKEW_SECONDS = 300;

/** 0 picks any free port (tests). */
const port = z.number().int().min(0).max(65535);

export const configSchema = z
  .object({
    /** Folder holding every role's SQLite file and, by default, the PKI. */
    dataDir: z.string().min(1).default(DEFAULT_DATA_DIR),
    /** PKI folder made by `simcred pki init`; defaults to <dataDir>/pki. */
    pkiDir: z.string().min(1).optional(),
    host: z.string().min(1).default(DEFAULT_HOST),
    ports: z
      .object({
        credentialing: port.default(DEFAULT_PORTS.credentialing),
        registration: z
          .array(port)
          .min(1)
          .default([...DEFAULT_PORTS.registration]),
        ocsp: port.default(DEFAULT_PORTS.ocsp),
        hss: port.default(DEFAULT_PORTS.hss),
        provisioning: z
          .array(port)
          .min(1)
          .default([...DEFAULT_PORTS.provisioning]),
        phlr: port.default(DEFAULT_PORTS.phlr),
        portal: port.default(DEFAULT_PORTS.portal),
      })
      .strict()
      .prefault({}),
    database: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('sqlite') }).strict(),
        z.object({ kind: z.literal('postgres'), url: z.string().min(1) }).strict(),
      ])
      .default({ kind: 'sqlite' }),
    registration: z
      .object({
        ttlSeconds: z.number().int().positive().default(DEFAULT_REGISTRATION_TTL_SECONDS),
        /** Key of the lookup challenges (32 bytes, hex/base64); generated into <dataDir>/registration/secrets.json when absent. */
        challengeSecret: z.string().optional(),
      })
      .strict()
      .prefault({}),
    credentialing: z
      .object({
        provisioningPolicy: z.enum(['hash', 'round-robin', 'first']).default('hash'),
        sessionTtlSeconds: z.number().int().min(10).max(3600).default(120),
        ticketTtlSeconds: z.number().int().min(10).max(86400).default(600),
      })
      .strict()
      .prefault({}),
    hss: z
      .object({
        /** MCC+MNC of the operator's range (001-02, a test network, by default). */
        plmn: z
          .string()
          .regex(/^\d{5,6}$/)
          .default('00102'),
        firstMsin: z.number().int().min(0).default(1),
        capacity: z.number().int().positive().default(1_000_000_000),
        amf: z
          .string()
          .regex(/^[0-9a-fA-F]{4}$/)
          .default('8000'),
        // At most 30 days: what the package format accepts (MAX_PACKAGE_TTL_SECONDS).
        packageTtlSeconds: z
          .number()
          .int()
          .positive()
          .max(30 * 24 * 3600)
          .default(7 * 24 * 3600),
        /** Key-encryption key (hex/base64, 32 bytes) and operator OP (hex, 16 bytes); generated into <dataDir>/hss/secrets.json when absent. */
        kek: z.string().optional(),
        op: z
          .string()
          .regex(/^[0-9a-fA-F]{32}$/)
          .optional(),
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
        /** Lifetime of an access grant (DESIGN §2 step 1: short-lived, registration only). */
        grantTtlSeconds: z.number().int().min(1).max(86400).default(600),
        /** Clock skew registration servers allow when checking a grant's iat/exp. */
        grantClockSkewSeconds: z.number().int().min(0).max(600).default(30),
        /** How long a PHLR challenge waits for its RES. */
        challengeTtlSeconds: z.number().int().min(1).max(3600).default(60),
        /** AMF of the PHLR's vectors. */
        amf: z
          .string()
          .regex(/^[0-9a-fA-F]{4}$/)
          .default('8000'),
        /** Where the factory's subscriber list is read; defaults to <pkiDir>/phlr/subscribers.ndjson. */
        subscribersFile: z.string().min(1).optional(),
        /** Key-encryption key for K_PIMSI/OPc at rest; generated into <dataDir>/phlr/secrets.json when absent. */
        kek: z.string().optional(),
      })
      .strict()
      .prefault({}),
    ocsp: z
      .object({
        clockSkewSeconds: z.number().int().min(0).max(3600).default(DEFAULT_OCSP_CLOCK_SKEW_SECONDS),
        timeoutMs: z.number().int().positive().default(5000),
        /** The responder re-reads revocations at most this often (ms); what it keeps is at most this stale. 0: every request. */
        revocationCheckMs: z.number().int().min(0).max(60_000).default(200),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type SimcredConfig = z.infer<typeof configSchema> & { pkiDir: string };

/**
 * Loads the typed config: defaults, then the JSON file (if any), then SIMCRED_* environment overrides.
 * An override names a field path with `__` between levels, e.g. SIMCRED_PORTS__OCSP=9000 or
 * SIMCRED_LOG__LEVEL=debug; values are parsed as JSON when they parse, else taken as strings.
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
    if (!name.startsWith('SIMCRED_') || value === undefined || name === 'SIMCRED_DEBUG') continue;
    setPath(raw, name.slice('SIMCRED_'.length).split('__').map(camelCase), parseValue(value));
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

function camelCase(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
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
