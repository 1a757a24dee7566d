import { z } from 'zod';
import { cell, schemaLeaves } from '../config/schema-doc.js';
import { SimcredError } from '../errors/index.js';
import { DSIM_ID_PATTERN } from './layout.js';

/** The factory image format manufactureDevices writes; loadFactoryImage also reads version 1. */
export const FACTORY_IMAGE_VERSION = 2;

const pem = z.string().regex(/^-----BEGIN CERTIFICATE-----/);
/** A file name inside the device folder: no separators, no `..`. */
const deviceFile = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/);
const hex16 = z.string().regex(/^[0-9a-f]{32}$/);
const serverUrl = z.url({ protocol: /^https?$/ });
/** A TPM2B_PUBLIC or TPM2B_PRIVATE as base64 (a P-256 key's are ~90 and ~130 bytes). */
const tpmBlob = z.base64().min(4).max(2048);

/** The trusted module implementations a device may carry (docs/device.md "Trusted module"). */
export const DEVICE_MODULES = ['software', 'tpm'] as const;
export type DeviceModuleKind = (typeof DEVICE_MODULES)[number];

/** Where the device finds the servers it talks to besides its registration server. */
export const factoryServersSchema = z
  .object({
    phlr: serverUrl.describe(
      'Preliminary HLR (step 1): AKA on the preliminary credentials, then an access grant. In the field, the network the radio finds.',
    ),
    ocsp: serverUrl.describe(
      "OCSP responder (step 11): status of the operator's package signer before the package is opened.",
    ),
    hss: serverUrl.describe(
      'HSS/HLR of the home network (step 12): the attach with the downloaded credentials.',
    ),
  })
  .strict();
export type FactoryServers = z.infer<typeof factoryServersSchema>;

const imageFields = {
  dsimId: z
    .string()
    .regex(DSIM_ID_PATTERN)
    .describe('The device identity: `DSIM` + 16 upper-case hex digits.'),
  keyType: z.enum(['ec', 'rsa']).describe('Kind of SK_dsim: EC P-256 or RSA-2048.'),
  certificate: deviceFile.describe(
    'File of CERT_dsim (PEM) in the device folder, beside factory.json (`device.crt.pem`).',
  ),
  privateKey: deviceFile
    .optional()
    .describe(
      'File of SK_dsim (PKCS#8 PEM, mode 0600) in the device folder (`device.key.pem`). Software module only: a TPM device has no key file.',
    ),
  module: z
    .enum(DEVICE_MODULES)
    .optional()
    .describe(
      "The device's trusted module: `software` (SK_dsim in `privateKey`, storage sealed with a key derived from it) or `tpm` (SK_dsim made in a TPM 2.0, see `tpm`; docs/device.md). Absent: `software`.",
    ),
  tpm: z
    .object({
      tcti: z
        .string()
        .min(1)
        .max(256)
        .describe(
          'How the device reaches its TPM (a TCTI, e.g. `swtpm:host=127.0.0.1,port=2321`, or `device:/dev/tpmrm0`).',
        ),
      keyPublic: tpmBlob.describe('SK_dsim as the TPM made it: TPM2B_PUBLIC (base64).'),
      keyPrivate: tpmBlob.describe(
        'SK_dsim: TPM2B_PRIVATE (base64), encrypted by the TPM under its storage root key; loadable in that TPM only.',
      ),
      storagePublic: tpmBlob.describe("The module's storage key, sealed by the TPM: TPM2B_PUBLIC (base64)."),
      storagePrivate: tpmBlob.describe(
        "The module's storage key, sealed by the TPM: TPM2B_PRIVATE (base64); only that TPM unseals it.",
      ),
    })
    .strict()
    .optional()
    .describe('TPM module only: where the TPM is and the blobs it made (no private key in the clear).'),
  chainPem: z
    .array(pem)
    .describe(
      'Certificates (PEM) the device sends after CERT_dsim as its chain: the device CA. certificateChain = [CERT_dsim, ...chainPem].',
    ),
  trustRoots: z
    .object({
      manufacturer: pem.describe('Manufacturer root CA (PEM).'),
      operator: pem.describe(
        'Operator root CA (PEM): the one TLS anchor for every HTTPS server the device reaches, and the anchor of the package signature (step 11).',
      ),
    })
    .strict(),
  preliminary: z
    .object({
      pimsi: z
        .string()
        .regex(/^\d{15}$/)
        .describe('Preliminary IMSI (MCC 001, MNC 01 + a 10-digit MSIN).'),
      kPimsi: hex16.describe('K_PIMSI, 16 bytes as hex (Milenage K).'),
      opcPimsi: hex16.describe('OPc of the preliminary subscription, 16 bytes as hex.'),
    })
    .strict(),
  registrationServers: z
    .array(serverUrl)
    .min(1)
    .max(8)
    .optional()
    .describe(
      'Registration servers in the order the device tries them at step 2 (the first that knows it answers; `registrationServer` is the first). Absent: `registrationServer` only.',
    ),
  registrationServer: serverUrl.describe(
    'Registration server (step 2): where the device looks up its registration nonce and credentialing server.',
  ),
  packageFormats: z
    .array(z.enum(['jose', 'xml']))
    .min(1)
    .max(2)
    .optional()
    .describe(
      'Credential package formats the device opens (step 11): `jose`, `xml` (docs/crypto.md §6, §6b). Absent: `jose` only; a package in another format is refused.',
    ),
};
const manufacturedAt = z.iso.datetime().describe('When the device was made (ISO 8601, UTC).');

/** devices/<DSIM_ID>/factory.json, version 2: what the device holds when it leaves the factory. */
export const factoryImageSchema = z
  .object({
    version: z.literal(FACTORY_IMAGE_VERSION).describe('Format version.'),
    ...imageFields,
    servers: factoryServersSchema,
    manufacturedAt,
  })
  .strict();

/** Version 1, before `servers`: still read, but such a device must be told where the servers are. */
const factoryImageV1Schema = z.object({ version: z.literal(1), ...imageFields, manufacturedAt }).strict();

export type FactoryImage = z.infer<typeof factoryImageSchema> | z.infer<typeof factoryImageV1Schema>;

const anyFactoryImage = z.discriminatedUnion('version', [factoryImageSchema, factoryImageV1Schema]);

/**
 * Checks a factory image read from JSON; throws SIMCRED_PKI_INCONSISTENT naming each bad field.
 *
 * @example
 *   const image = parseFactoryImage(JSON.parse(text), 'devices/DSIM…/factory.json');
 */
export function parseFactoryImage(value: unknown, where: string): FactoryImage {
  const parsed = anyFactoryImage.safeParse(value);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new SimcredError(
      'SIMCRED_PKI_INCONSISTENT',
      `${where} is not a factory image: ${fields.join('; ')}`,
    );
  }
  const image = parsed.data;
  // The module decides where SK_dsim is: a key file (software) or TPM blobs (tpm), never both.
  const tpm = moduleOf(image) === 'tpm';
  if (tpm ? !image.tpm || image.privateKey !== undefined : !image.privateKey || image.tpm !== undefined) {
    throw new SimcredError(
      'SIMCRED_PKI_INCONSISTENT',
      `${where} is not a factory image: a ${tpm ? 'tpm' : 'software'} module needs ${tpm ? '`tpm` and no `privateKey`' : '`privateKey` and no `tpm`'}`,
    );
  }
  if (tpm && image.keyType !== 'ec') {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${where}: a TPM device key is EC P-256`);
  }
  return image;
}

/**
 * The trusted module a factory image names (`software` when it names none).
 *
 * @example
 *   moduleOf(device.image); // 'tpm'
 */
export function moduleOf(image: FactoryImage): DeviceModuleKind {
  return image.module ?? 'software';
}

/** Where a device reaches each server, all from its factory image (docs/device.md). */
export interface DeviceEndpoints {
  registrationServer: string;
  /** Every registration server, in the order the device tries them (`registrationServer` first). */
  registrationServers: string[];
  phlrUrl: string;
  ocspUrl: string;
  hssUrl: string;
}

/**
 * The PHLR, OCSP responder and HSS a factory image names: all three from version 2, none from
 * version 1.
 *
 * @example
 *   imageServers(device.image).hss; // 'https://127.0.0.1:7430'
 */
export function imageServers(image: FactoryImage): Partial<FactoryServers> {
  return image.version === 1 ? {} : image.servers;
}

/**
 * The servers a device talks to, as its factory image names them; SIMCRED_PKI_INCONSISTENT for a
 * version-1 image, which names only its registration server.
 *
 * @example
 *   const { phlrUrl, hssUrl, ocspUrl } = deviceEndpoints(device.image);
 */
export function deviceEndpoints(image: FactoryImage): DeviceEndpoints {
  const { phlr, ocsp, hss } = imageServers(image);
  if (!phlr || !ocsp || !hss) throw noServersError(image);
  return {
    registrationServer: image.registrationServer,
    registrationServers: registrationServersOf(image),
    phlrUrl: phlr,
    ocspUrl: ocsp,
    hssUrl: hss,
  };
}

/** The registration servers an image lists, in the device's order (`registrationServer` first). */
export function registrationServersOf(image: FactoryImage): string[] {
  const listed = image.registrationServers ?? [];
  return [image.registrationServer, ...listed.filter((s) => s !== image.registrationServer)];
}

/** @internal A version-1 image used where the servers are needed. */
export function noServersError(image: FactoryImage): SimcredError {
  return new SimcredError(
    'SIMCRED_PKI_INCONSISTENT',
    `the factory image of ${image.dsimId} (version ${image.version}) names no PHLR, OCSP responder and HSS; manufacture the device again`,
  );
}

/**
 * The field table of docs/device.md, from factoryImageSchema.
 *
 * @example
 *   renderFactoryImageFields().startsWith('| field |'); // true
 */
export function renderFactoryImageFields(): string {
  const rows = schemaLeaves(factoryImageSchema).map(
    (l) => `| \`${l.path.join('.')}\` | ${cell(l.type)} | ${cell(l.description ?? '')} |`,
  );
  return ['| field | type | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

const FIELDS_START = '<!-- factory-image-fields:start -->';
const FIELDS_END = '<!-- factory-image-fields:end -->';

/**
 * docs/device.md with the field table between its markers replaced by renderFactoryImageFields().
 *
 * @example
 *   writeFileSync('docs/device.md', withFactoryImageFields(readFileSync('docs/device.md', 'utf8')));
 */
export function withFactoryImageFields(doc: string): string {
  const start = doc.indexOf(FIELDS_START);
  const end = doc.indexOf(FIELDS_END);
  if (start < 0 || end < start)
    throw new Error(`docs/device.md lacks the ${FIELDS_START} … ${FIELDS_END} markers`);
  return `${doc.slice(0, start + FIELDS_START.length)}\n\n${renderFactoryImageFields()}\n\n${doc.slice(end)}`;
}
