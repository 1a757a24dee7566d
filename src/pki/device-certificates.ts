import { createHash, createPrivateKey, randomBytes } from 'node:crypto';
import { SimcredError } from '../errors/index.js';
import { fileSigningKey, type SigningKey } from '../keys/signing-key.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import {
  buildName,
  deviceConstantExtensions,
  deviceSanExtension,
  buildTbsCertificate,
  assembleCertificate,
  signatureAlgorithm,
  MANUFACTURER_ORG,
  OID,
  parseSpki,
  randomSerial,
  serialHex,
  toPem,
  type Issuer,
} from './certificates.js';
import { DSIM_ID_PATTERN } from './layout.js';
import { newEncodedEcKeyPairSync, newEncodedKeyPair, type KeyType } from './keys.js';

/*
 * The per-device work of a factory run (key pair + certificate), kept free of files and the
 * database so it runs unchanged in the main thread or in a worker thread.
 */

/** What a worker needs to issue device certificates; plain data so it crosses postMessage. */
export interface DeviceIssuingContext {
  /** The device CA's PKCS#8 PEM when it is a file; absent when its key is in a token (signer given). */
  caKeyPem?: string;
  issuerNameDer: Uint8Array;
  issuerKeyId: Uint8Array;
  notBefore: string;
  notAfter: string;
  keyType: KeyType;
}

export interface DeviceCredential {
  dsimId: string;
  serialHex: string;
  certPem: string;
  /** SK_dsim (PKCS#8 PEM). */
  keyPem: string;
  tpm?: undefined;
}

/** A TPM device's certificate and blobs, base64 (src/pki/tpm-device.ts): no private key leaves its TPM. */
export interface TpmDeviceCredential extends Omit<DeviceCredential, 'keyPem' | 'tpm'> {
  keyPem?: undefined;
  tpm: { keyPublic: string; keyPrivate: string; storagePublic: string; storagePrivate: string };
}

export interface DeviceIssuer {
  issuer: Issuer;
  signer: SigningKey;
  keyType: KeyType;
  notBefore: Date;
  notAfter: Date;
  constantExtensions: ReturnType<typeof deviceConstantExtensions>;
  /** Built from the first device of the run (see deviceTbs). */
  template?: TbsTemplate;
  /** Certificate templates by "TBS length:signature length" (see signDeviceTbs). */
  outer: Map<string, { der: Buffer; tbsAt: number; sigAt: number }>;
}

/**
 * The issuing side of a run, from plain data (a worker) or with the CA's SigningKey (the main thread,
 * and always for a key in a PKCS#11 token, which a worker thread cannot reach: see manufacture.ts).
 */
export function prepareDeviceIssuer(ctx: DeviceIssuingContext, signer?: SigningKey): DeviceIssuer {
  if (!signer && ctx.caKeyPem === undefined) {
    throw new SimcredError('SIMCRED_INTERNAL', 'device issuer without a key');
  }
  const key = signer ?? fileSigningKey(createPrivateKey(ctx.caKeyPem!), 'device CA key');
  return {
    issuer: {
      name: AsnConvert.parse(ctx.issuerNameDer, Name),
      keyId: Buffer.from(ctx.issuerKeyId),
      signer: key,
    },
    signer: key,
    keyType: ctx.keyType,
    notBefore: new Date(ctx.notBefore),
    notAfter: new Date(ctx.notAfter),
    constantExtensions: deviceConstantExtensions(ctx.keyType),
    outer: new Map(),
  };
}

/** DSIM_ID bound twice, as RFC 5280 allows: subject serialNumber (2.5.4.5) and a SAN URI. */
export function deviceSubject(dsimId: string) {
  return buildName([
    [OID.organization, MANUFACTURER_ORG],
    [OID.serialNumber, dsimId],
    [OID.commonName, dsimId],
  ]);
}

/**
 * A device TBSCertificate made once per run by the generic builder, with the offsets of the
 * only fields that differ between devices. Each differing field is a fixed-length value (16-byte
 * serial, 20-character DSIM_ID, 20-byte key identifier, SPKI of a fixed-size key), so filling it
 * in yields exactly the DER the generic builder would produce for that device (a test checks).
 * This is what makes 10,000 devices take seconds: no ASN.1 encoding per device, only signing.
 */
interface TbsTemplate {
  der: Buffer;
  serialAt: number;
  dsimAt: number[];
  skiAt: number;
  spkiAt: number;
  spkiLength: number;
  /** Offset in the SPKI of the subjectPublicKey bits (what the key identifier hashes). */
  keyBitsAt: number;
}

function buildTemplate(di: DeviceIssuer, spkiDer: Buffer): TbsTemplate {
  const dsimId = `DSIM${randomBytes(8).toString('hex').toUpperCase()}`;
  const serial = randomSerial();
  const ski = randomBytes(20);
  const der = buildDeviceTbs(di, dsimId, serial, spkiDer, ski);
  const offsets = (needle: Buffer): number[] => {
    const found: number[] = [];
    for (let at = der.indexOf(needle); at !== -1; at = der.indexOf(needle, at + 1)) found.push(at);
    return found;
  };
  const serialAt = offsets(serial);
  const dsimAt = offsets(Buffer.from(dsimId, 'ascii'));
  const skiAt = offsets(ski);
  const spkiAt = offsets(spkiDer);
  // Subject serialNumber, subject CN, SAN URI: three places, as the profile says.
  if (serialAt.length !== 1 || dsimAt.length !== 3 || skiAt.length !== 1 || spkiAt.length !== 1) {
    throw new SimcredError('SIMCRED_INTERNAL', 'device certificate template has unexpected layout');
  }
  const keyBits = Buffer.from(parseSpki(spkiDer).subjectPublicKey);
  const keyBitsAt = spkiDer.length - keyBits.length;
  if (!spkiDer.subarray(keyBitsAt).equals(keyBits)) {
    throw new SimcredError('SIMCRED_INTERNAL', 'subjectPublicKey is not the tail of the SPKI');
  }
  return {
    der,
    serialAt: serialAt[0]!,
    dsimAt,
    skiAt: skiAt[0]!,
    spkiAt: spkiAt[0]!,
    spkiLength: spkiDer.length,
    keyBitsAt,
  };
}

/** The generic (slow) path; deviceTbs must produce the same bytes. */
export function buildDeviceTbs(
  di: DeviceIssuer,
  dsimId: string,
  serial: Buffer,
  spkiDer: Buffer,
  ski?: Buffer,
): Buffer {
  return buildTbsCertificate(
    {
      serial,
      subject: deviceSubject(dsimId),
      spki: parseSpki(spkiDer),
      notBefore: di.notBefore,
      notAfter: di.notAfter,
      extensions: [...di.constantExtensions, deviceSanExtension(dsimId)],
      ...(ski ? { subjectKeyId: ski } : {}),
    },
    di.issuer,
  );
}

/**
 * The device TBSCertificate: from the template when the key's SPKI has the template's size
 * (always, for P-256 and RSA-2048 with e = 65537), from the generic builder otherwise.
 */
export function deviceTbs(di: DeviceIssuer, dsimId: string, serial: Buffer, spkiDer: Buffer): Buffer {
  const template = (di.template ??= buildTemplate(di, spkiDer));
  if (spkiDer.length !== template.spkiLength || serial.length !== 16 || !DSIM_ID_PATTERN.test(dsimId)) {
    return buildDeviceTbs(di, dsimId, serial, spkiDer);
  }
  const tbs = Buffer.from(template.der);
  serial.copy(tbs, template.serialAt);
  for (const at of template.dsimAt) tbs.write(dsimId, at, 'ascii');
  // RFC 5280 §4.2.1.2 method (1): SHA-1 over the subjectPublicKey BIT STRING value, which is the
  // tail of an SPKI (same offset for every key of the template's size).
  createHash('sha1').update(spkiDer.subarray(template.keyBitsAt)).digest().copy(tbs, template.skiAt);
  spkiDer.copy(tbs, template.spkiAt);
  return tbs;
}

/**
 * Key pairs and certificates for a batch of devices. EC keys are generated synchronously
 * (~60 µs, cheaper than a thread-pool round trip); RSA keys asynchronously so the pool's threads
 * generate several at once.
 *
 * @example
 *   const creds = await makeDeviceCredentials(prepareDeviceIssuer(ctx), ['DSIM0123456789ABCDEF']);
 */
export async function makeDeviceCredentials(
  di: DeviceIssuer,
  dsimIds: readonly string[],
): Promise<DeviceCredential[]> {
  const keyPairs =
    di.keyType === 'ec'
      ? dsimIds.map(() => newEncodedEcKeyPairSync())
      : await Promise.all(dsimIds.map(() => newEncodedKeyPair(di.keyType)));
  const serials = randomBytes(16 * dsimIds.length);
  return dsimIds.map((dsimId, i) => {
    const { spkiDer, pkcs8Pem } = keyPairs[i]!;
    const serial = serials.subarray(16 * i, 16 * (i + 1));
    serial[0] = (serial[0]! & 0x3f) | 0x40; // as randomSerial(): positive, exactly 16 octets
    const der = signDeviceTbs(di, deviceTbs(di, dsimId, serial, spkiDer));
    return { dsimId, serialHex: serialHex(serial), certPem: toPem(der), keyPem: pkcs8Pem };
  });
}

/**
 * A device certificate for a public key the issuer did not make (a key in the device's TPM, its
 * possession proved by a CSR): the same template and signature as a factory-made key's.
 *
 * @example
 *   const { serialHex, certPem } = issueDeviceCertificate(prepareDeviceIssuer(ctx), dsimId, spkiDer);
 */
export function issueDeviceCertificate(
  di: DeviceIssuer,
  dsimId: string,
  spkiDer: Buffer,
): { serialHex: string; certPem: string } {
  const serial = randomSerial();
  return {
    serialHex: serialHex(serial),
    certPem: toPem(signDeviceTbs(di, deviceTbs(di, dsimId, serial, spkiDer))),
  };
}

/**
 * Signs and wraps a device TBSCertificate. The Certificate SEQUENCE around it depends only on
 * the lengths of the TBS and of the signature (an ECDSA signature's DER is 70–72 octets), so one
 * encoding per length pair, made by asn1-schema, is reused with the bytes copied in.
 */
function signDeviceTbs(di: DeviceIssuer, tbs: Buffer): Buffer {
  const { algorithm } = signatureAlgorithm(di.signer);
  const signature = di.signer.sign(tbs, 'der');
  const key = `${tbs.length}:${signature.length}`;
  let outer = di.outer.get(key);
  if (!outer) {
    const placeholder = randomBytes(signature.length);
    const der = assembleCertificate(tbs, algorithm, placeholder);
    const tbsAt = der.indexOf(tbs);
    const sigAt = der.lastIndexOf(placeholder);
    if (tbsAt < 0 || sigAt < 0 || sigAt + placeholder.length !== der.length) {
      return assembleCertificate(tbs, algorithm, signature);
    }
    outer = { der, tbsAt, sigAt };
    di.outer.set(key, outer);
  }
  const der = Buffer.from(outer.der);
  tbs.copy(der, outer.tbsAt);
  signature.copy(der, outer.sigAt);
  return der;
}
