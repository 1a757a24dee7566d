import { createPublicKey, X509Certificate } from 'node:crypto';
import { dirname, join, relative, resolve } from 'node:path';
import { SimcredError } from '../errors/index.js';
import {
  buildName,
  caExtensions,
  issueCertificate,
  issuerKey,
  issuerFromCertificate,
  keyIdentifier,
  MANUFACTURER_ORG,
  ocspSignerExtensions,
  OID,
  OPERATOR_ORG,
  packageSignerExtensions,
  parseSpki,
  randomSerial,
  tlsServerExtensions,
  toPem,
  validityFrom,
  type DistinguishedName,
  type Issuer,
} from './certificates.js';
import {
  createFile,
  ensureDir,
  fileExists,
  PUBLIC_MODE,
  readText,
  SECRET_MODE,
  writeFile,
} from '../storage/files.js';
import { loadPrivateKey, newEcKeyPairSync, privateKeyPem, publicKeySpki } from './keys.js';
import { formatPkcs11Uri, isPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from '../keys/pkcs11-uri.js';
import { Pkcs11Token } from '../keys/pkcs11-token.js';
import { fileSigningKey, tokenSigningKey, type SigningKey } from '../keys/signing-key.js';
import {
  CA_DATABASE_FILE,
  PKI_MANIFEST_FILE,
  TLS_ROLES,
  tlsChainPath,
  type CertKeyPaths,
  type IssuerName,
  type PkiManifest,
  type TlsRole,
} from './layout.js';
import { CaStore, type IssuedCertificate } from './store.js';
import { tlsNames, type TlsHostNames } from './tls-names.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, id_ce_subjectAltName, type Extension } from '@peculiar/asn1-x509';

/** Validity in years, per certificate kind. */
export const VALIDITY_YEARS = {
  root: 20,
  ca: 10,
  ocspSigner: 2,
  tls: 2,
  packageSigner: 5,
  device: 20,
} as const;

function pair(base: string): CertKeyPaths {
  return { cert: `${base}.crt.pem`, key: `${base}.key.pem` };
}

/** The default layout, relative to the PKI folder. */
export function defaultManifest(createdAt: Date): PkiManifest {
  return {
    version: 1,
    createdAt: createdAt.toISOString(),
    manufacturer: {
      root: pair('manufacturer/root'),
      deviceCa: pair('manufacturer/device-ca'),
      deviceCaOcsp: pair('manufacturer/device-ca-ocsp'),
    },
    operator: {
      root: pair('operator/root'),
      operatorCa: pair('operator/operator-ca'),
      operatorCaOcsp: pair('operator/operator-ca-ocsp'),
      packageSigner: pair('operator/package-signer'),
      tls: Object.fromEntries(TLS_ROLES.map((role) => [role, pair(`operator/tls/${role}`)])) as Record<
        TlsRole,
        CertKeyPaths
      >,
    },
  };
}

/**
 * The operator's signing keys that `pki init --pkcs11` makes in the token, by manifest entry: token
 * object label and CKA_ID. TLS keys stay files: Node's TLS stack takes a key, not a token.
 */
export const TOKEN_KEYS = {
  manufacturerRoot: { label: 'simcred-manufacturer-root', id: 0x01 },
  deviceCa: { label: 'simcred-device-ca', id: 0x02 },
  deviceCaOcsp: { label: 'simcred-device-ca-ocsp', id: 0x03 },
  operatorRoot: { label: 'simcred-operator-root', id: 0x04 },
  operatorCa: { label: 'simcred-operator-ca', id: 0x05 },
  operatorCaOcsp: { label: 'simcred-operator-ca-ocsp', id: 0x06 },
  packageSigner: { label: 'simcred-package-signer', id: 0x07 },
} as const;

/** The URI of one of TOKEN_KEYS in the token `tokenUri` names (its module-path and pin-source kept). */
export function tokenKeyUri(tokenUri: Pkcs11Uri, key: keyof typeof TOKEN_KEYS): string {
  const { label, id } = TOKEN_KEYS[key];
  const { object: _object, id: _id, type: _type, pinValue: _pin, ...token } = tokenUri;
  return formatPkcs11Uri({ ...token, object: label, id: Buffer.from([id]), type: 'private' });
}

/** The default layout with the operator's signing keys (TOKEN_KEYS) named by pkcs11: URIs. */
export function tokenManifest(createdAt: Date, tokenUriText: string): PkiManifest {
  const token = parsePkcs11Uri(tokenUriText);
  const manifest = defaultManifest(createdAt);
  const inToken = (paths: CertKeyPaths, key: keyof typeof TOKEN_KEYS) => ({
    cert: paths.cert,
    key: tokenKeyUri(token, key),
  });
  const m = manifest.manufacturer;
  const o = manifest.operator;
  return {
    ...manifest,
    manufacturer: {
      root: inToken(m.root, 'manufacturerRoot'),
      deviceCa: inToken(m.deviceCa, 'deviceCa'),
      deviceCaOcsp: inToken(m.deviceCaOcsp, 'deviceCaOcsp'),
    },
    operator: {
      ...o,
      root: inToken(o.root, 'operatorRoot'),
      operatorCa: inToken(o.operatorCa, 'operatorCa'),
      operatorCaOcsp: inToken(o.operatorCaOcsp, 'operatorCaOcsp'),
      packageSigner: inToken(o.packageSigner, 'packageSigner'),
    },
  };
}

export interface InitResult {
  dir: string;
  manifestPath: string;
  manifest: PkiManifest;
  /** Absolute paths of the files this run created (empty when the folder was complete). */
  created: string[];
  /** Absolute paths of the TLS certificates issued again, with the same key, for other host names. */
  reissued: string[];
}

export interface InitOptions {
  /**
   * Host names and addresses to put in a role's TLS certificate, besides localhost and 127.0.0.1.
   * A role named here whose certificate carries other names gets a new certificate for its kept key;
   * a role not named keeps the certificate it has (a new one carries loopback only).
   */
  hosts?: TlsHostNames;
  /**
   * A PKCS#11 token (RFC 7512 URI naming the token; module-path and pin-source kept): a new PKI's
   * CA, OCSP-signer and package-signer keys are generated in it, never written to a file; pki.json
   * names them by URI. An existing PKI keeps whatever its pki.json names (no key is ever moved).
   */
  pkcs11?: string;
}

interface Ensured {
  der: Buffer;
  issuer: Issuer;
}

/**
 * Creates the demo PKI in `dir`, or completes it: existing keys and certificates are kept byte
 * for byte, only missing ones are made, so running it twice is harmless. Each TLS role also gets
 * its chain file (leaf then operator CA, see tlsChainPath), rewritten only when it does not match.
 * `options.hosts` names each role's hosts (see InitOptions): only the TLS leaves whose names changed
 * are issued again, for the same key.
 *
 * @example
 *   const { manifest, created } = await initPki('/data/pki');
 *   manifest.manufacturer.deviceCa.cert; // 'manufacturer/device-ca.crt.pem'
 *   await initPki('/data/pki', new Date(), { hosts: { credentialing: ['cred.example.com'] } });
 */
export async function initPki(
  dirArg: string,
  now = new Date(),
  options: InitOptions = {},
): Promise<InitResult> {
  const dir = resolve(dirArg);
  ensureDir(dir);
  const manifestPath = join(dir, PKI_MANIFEST_FILE);
  const manifestExisted = fileExists(manifestPath);
  const manifest = manifestExisted
    ? readManifest(dir)
    : options.pkcs11 !== undefined
      ? tokenManifest(now, options.pkcs11)
      : defaultManifest(now);
  if (manifestExisted && options.pkcs11 !== undefined && !isPkcs11Uri(manifest.operator.packageSigner.key)) {
    throw new SimcredError(
      'SIMCRED_CLI_ARGUMENT',
      `${dir} already holds a PKI with file keys; --pkcs11 makes a new PKI only (keys are never moved)`,
    );
  }
  const created: string[] = [];
  const reissued: string[] = [];
  if (!fileExists(join(dir, CA_DATABASE_FILE))) created.push(join(dir, CA_DATABASE_FILE));
  const issued: IssuedCertificate[] = [];

  const ensure = (
    paths: CertKeyPaths,
    subject: DistinguishedName,
    years: number,
    extensions: ReturnType<typeof caExtensions>,
    issuer: Issuer | 'self',
    record?: IssuerName,
    keep?: (der: Buffer) => boolean,
  ): Ensured => {
    const result = ensureCertificate(dir, paths, subject, years, extensions, issuer, now, created, {
      ...(keep ? { keep } : {}),
      reissued,
    });
    if (record) {
      const cert = new X509Certificate(result.der);
      issued.push({
        issuer: record,
        serialHex: cert.serialNumber,
        subject: subject.map(([oid, value]) => `${shortName(oid)}=${value}`).join(', '),
        notAfter: new Date(cert.validTo),
        certPath: paths.cert,
      });
    }
    return result;
  };

  const m = manifest.manufacturer;
  const mOrg: DistinguishedName = [[OID.organization, MANUFACTURER_ORG]];
  const mRoot = ensure(
    m.root,
    [...mOrg, [OID.commonName, 'simcred demo manufacturer root CA']],
    VALIDITY_YEARS.root,
    caExtensions(1),
    'self',
  );
  const deviceCa = ensure(
    m.deviceCa,
    [...mOrg, [OID.commonName, 'simcred demo device CA']],
    VALIDITY_YEARS.ca,
    caExtensions(0),
    mRoot.issuer,
  );
  ensure(
    m.deviceCaOcsp,
    [...mOrg, [OID.commonName, 'simcred demo device CA OCSP responder']],
    VALIDITY_YEARS.ocspSigner,
    ocspSignerExtensions(),
    deviceCa.issuer,
    'device-ca',
  );

  const o = manifest.operator;
  const oOrg: DistinguishedName = [[OID.organization, OPERATOR_ORG]];
  const oRoot = ensure(
    o.root,
    [...oOrg, [OID.commonName, 'simcred demo operator root CA']],
    VALIDITY_YEARS.root,
    caExtensions(1),
    'self',
  );
  const operatorCa = ensure(
    o.operatorCa,
    [...oOrg, [OID.commonName, 'simcred demo operator CA']],
    VALIDITY_YEARS.ca,
    caExtensions(0),
    oRoot.issuer,
  );
  ensure(
    o.operatorCaOcsp,
    [...oOrg, [OID.commonName, 'simcred demo operator CA OCSP responder']],
    VALIDITY_YEARS.ocspSigner,
    ocspSignerExtensions(),
    operatorCa.issuer,
    'operator-ca',
  );
  ensure(
    o.packageSigner,
    [...oOrg, [OID.commonName, 'simcred package signer']],
    VALIDITY_YEARS.packageSigner,
    packageSignerExtensions(),
    operatorCa.issuer,
    'operator-ca',
  );
  for (const role of TLS_ROLES) {
    const names = tlsNames(options.hosts?.[role]);
    const extensions = tlsServerExtensions(names.dns, names.ip);
    const wanted = extensions.find((e) => e.extnID === id_ce_subjectAltName)!;
    ensure(
      o.tls[role],
      [...oOrg, [OID.commonName, `simcred-${role}`]],
      VALIDITY_YEARS.tls,
      extensions,
      operatorCa.issuer,
      'operator-ca',
      // Without names for this role, whatever names its certificate has are kept.
      options.hosts?.[role] ? (der) => sameSubjectAltName(der, wanted) : undefined,
    );
  }

  // Rewritten when missing or stale (a leaf made again), so the chain always matches the leaf on disk.
  const operatorCaPem = readText(join(dir, o.operatorCa.cert));
  for (const role of TLS_ROLES) {
    const leafPem = readText(join(dir, o.tls[role].cert));
    const chain = `${leafPem.endsWith('\n') ? leafPem : `${leafPem}\n`}${operatorCaPem}`;
    const chainPath = join(dir, tlsChainPath(o.tls[role]));
    if (!fileExists(chainPath) || readText(chainPath) !== chain) {
      writeFile(chainPath, chain, PUBLIC_MODE);
      created.push(chainPath);
    }
  }

  // Recorded on every run (duplicates ignored) so a lost ca.db is rebuilt from the certificates.
  const store = await CaStore.open(dir);
  try {
    await store.recordIssued(issued, { ignoreDuplicates: true });
  } finally {
    await store.close();
  }
  if (!manifestExisted) {
    writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, PUBLIC_MODE);
    created.push(manifestPath);
  }
  return { dir, manifestPath, manifest, created, reissued };
}

/** Whether a certificate's subjectAltName extension is, byte for byte, the one wanted. */
function sameSubjectAltName(der: Buffer, wanted: Extension): boolean {
  const extensions = AsnConvert.parse(der, Certificate).tbsCertificate.extensions ?? [];
  const have = extensions.find((e) => e.extnID === id_ce_subjectAltName);
  return (
    have !== undefined && Buffer.from(have.extnValue.buffer).equals(Buffer.from(wanted.extnValue.buffer))
  );
}

/**
 * One certificate and its key. A key without its certificate (an interrupted run) is reused;
 * a certificate without its key, or one its issuer did not sign, cannot be repaired. A certificate
 * that `reissue.keep` refuses is issued again for its key and replaces the file.
 */
function ensureCertificate(
  dir: string,
  paths: CertKeyPaths,
  subjectDn: DistinguishedName,
  years: number,
  extensions: ReturnType<typeof caExtensions>,
  issuerArg: Issuer | 'self',
  now: Date,
  created: string[],
  reissue: { keep?: (der: Buffer) => boolean; reissued: string[] },
): Ensured {
  const certPath = join(dir, paths.cert);
  const haveCert = fileExists(certPath);
  const signer = isPkcs11Uri(paths.key)
    ? ensureTokenKey(paths.key, certPath, haveCert)
    : ensureFileKey(join(dir, paths.key), certPath, haveCert, created);
  const spki = parseSpki(publicKeySpki(signer.publicKey));
  const subject = buildName(subjectDn);
  const selfIssuer: Issuer = { name: subject, keyId: keyIdentifier(spki), signer };
  const issuer = issuerArg === 'self' ? selfIssuer : issuerArg;

  let der: Buffer;
  if (haveCert) {
    const cert = parseCertificateFile(certPath);
    if (!cert.publicKey.equals(signer.publicKey)) {
      throw new SimcredError(
        'SIMCRED_PKI_INCONSISTENT',
        `${certPath} does not match its key ${signer.source}`,
      );
    }
    if (!cert.verify(issuerPublicKey(issuer))) {
      throw new SimcredError(
        'SIMCRED_PKI_INCONSISTENT',
        `${certPath} is not signed by its issuer (was the issuer re-created?)`,
      );
    }
    der = Buffer.from(cert.raw);
    if (reissue.keep && !reissue.keep(der)) {
      der = issueCertificate(
        { serial: randomSerial(), subject, spki, ...validityFrom(now, years), extensions },
        issuer,
      );
      writeFile(certPath, toPem(der), PUBLIC_MODE);
      reissue.reissued.push(certPath);
    }
  } else {
    der = issueCertificate(
      { serial: randomSerial(), subject, spki, ...validityFrom(now, years), extensions },
      issuer,
    );
    ensureDir(dirname(certPath));
    createFile(certPath, toPem(der), PUBLIC_MODE);
    created.push(certPath);
  }
  // The issuer facts for children come from the certificate itself, so a kept certificate's
  // subject (not today's naming) is what children name as their issuer.
  return { der, issuer: issuerFromCertificate(der, signer) };
}

function issuerPublicKey(issuer: Issuer) {
  const key = issuerKey(issuer);
  return 'sign' in key ? key.publicKey : createPublicKey(key);
}

/** A PEM key file: kept when there, made when missing (a certificate without its key cannot be repaired). */
function ensureFileKey(keyPath: string, certPath: string, haveCert: boolean, created: string[]): SigningKey {
  if (fileExists(keyPath)) return fileSigningKey(loadPrivateKey(keyPath), keyPath);
  if (haveCert) {
    throw new SimcredError(
      'SIMCRED_PKI_INCONSISTENT',
      `${certPath} exists but its key ${keyPath} is missing`,
    );
  }
  const { privateKey } = newEcKeyPairSync();
  ensureDir(dirname(keyPath));
  createFile(keyPath, privateKeyPem(privateKey), SECRET_MODE);
  created.push(keyPath);
  return fileSigningKey(privateKey, keyPath);
}

/** A P-256 key in the token: kept when its label is there, generated (non-extractable) when missing. */
function ensureTokenKey(keyUri: string, certPath: string, haveCert: boolean): SigningKey {
  const uri = parsePkcs11Uri(keyUri);
  let token: Pkcs11Token;
  try {
    token = Pkcs11Token.open(uri);
  } catch {
    return tokenSigningKey(keyUri); // the same failure, as the SimcredError the CLI prints
  }
  const present = token.objects().some((o) => o.class === 'private' && o.label === uri.object);
  if (!present) {
    if (haveCert) {
      throw new SimcredError(
        'SIMCRED_PKI_INCONSISTENT',
        `${certPath} exists but its key ${keyUri} is missing`,
      );
    }
    try {
      token.generateEcP256KeyPair(uri.object!, uri.id!);
    } catch (err) {
      throw new SimcredError(
        'SIMCRED_KEY_STORE_UNAVAILABLE',
        `cannot generate ${keyUri}: ${(err as Error).message.split('\n')[0]}`,
        { cause: err },
      );
    }
  }
  return tokenSigningKey(keyUri);
}

function parseCertificateFile(path: string): X509Certificate {
  try {
    return new X509Certificate(readText(path));
  } catch (err) {
    if (err instanceof SimcredError) throw err;
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${path} is not a PEM certificate`, { cause: err });
  }
}

/**
 * Reads and sanity-checks pki.json; paths in it must stay inside the folder.
 *
 * @example
 *   const manifest = readManifest('/data/pki');
 */
export function readManifest(dirArg: string): PkiManifest {
  const dir = resolve(dirArg);
  const path = join(dir, PKI_MANIFEST_FILE);
  if (!fileExists(path)) {
    throw new SimcredError(
      'SIMCRED_PKI_NOT_INITIALISED',
      `${dir} has no ${PKI_MANIFEST_FILE}; run \`simcred pki init --dir ${dir}\``,
    );
  }
  let manifest: PkiManifest;
  try {
    manifest = JSON.parse(readText(path)) as PkiManifest;
  } catch (err) {
    if (err instanceof SimcredError) throw err;
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${path} is not valid JSON`, { cause: err });
  }
  const pairs = manifest?.version === 1 ? manifestPairs(manifest) : undefined;
  const bad =
    !pairs ||
    pairs.some(
      (p) =>
        typeof p?.cert !== 'string' ||
        typeof p?.key !== 'string' ||
        // A key is a file inside the folder or a pkcs11: URI (pki init --pkcs11).
        [p.cert, ...(isPkcs11Uri(p.key) ? [] : [p.key])].some((f) =>
          relative(dir, resolve(dir, f)).startsWith('..'),
        ),
    );
  if (bad) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${path} is not a version 1 simcred PKI manifest`);
  }
  return manifest;
}

function manifestPairs(manifest: PkiManifest): (CertKeyPaths | undefined)[] | undefined {
  const m = manifest.manufacturer;
  const o = manifest.operator;
  if (!m || !o || !o.tls) return undefined;
  return [
    m.root,
    m.deviceCa,
    m.deviceCaOcsp,
    o.root,
    o.operatorCa,
    o.operatorCaOcsp,
    o.packageSigner,
    ...TLS_ROLES.map((role) => o.tls[role]),
  ];
}

function shortName(oid: string): string {
  return oid === OID.commonName
    ? 'CN'
    : oid === OID.organization
      ? 'O'
      : oid === OID.serialNumber
        ? 'serialNumber'
        : oid;
}
