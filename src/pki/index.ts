import { X509Certificate, type KeyObject } from 'node:crypto';
import { join, resolve } from 'node:path';
import { SimcredError } from '../errors/index.js';
import { fileExists, readText } from '../storage/files.js';
import { readManifest } from './init.js';
import { loadPkiSigningKey, loadPrivateKey } from './keys.js';
import { isPkcs11Uri } from '../keys/pkcs11-uri.js';
import type { SigningKey } from '../keys/signing-key.js';
import {
  deviceDir,
  DSIM_ID_PATTERN,
  TLS_ROLES,
  type CertKeyPaths,
  type IssuerName,
  type PkiManifest,
  type TlsRole,
} from './layout.js';
import { CaStore } from './store.js';
import { moduleOf, parseFactoryImage, type DeviceModuleKind, type FactoryImage } from './factory-image.js';

export * from './layout.js';
export * from './factory-image.js';
export { CaStore, REVOCATION_REASONS, normaliseSerial } from './store.js';
export type { CertificateStatus, IssuedCertificate, ManufacturedDevice, RevocationReason } from './store.js';
export { initPki, readManifest, VALIDITY_YEARS, type InitOptions, type InitResult } from './init.js';
export { parseTlsHosts, tlsName, tlsNames, type TlsHostNames, type TlsNames } from './tls-names.js';
export {
  manufactureDevices,
  DEFAULT_REGISTRATION_SERVERS,
  DEFAULT_FACTORY_SERVERS,
  PHLR_SUBSCRIBERS_FILE,
  PIMSI_PREFIX,
  type ManufactureOptions,
  type ManufactureResult,
  type PreliminarySubscriber,
} from './manufacture.js';
export { revokeCertificate, type RevokeResult, type RevokeTarget } from './revoke.js';
export { loadPkiSigningKey, loadPrivateKey, type KeyType } from './keys.js';
export { dsimUri, toPem } from './certificates.js';

/**
 * One certificate of the PKI with its key. The certificate is read eagerly; the private key only
 * when asked for, so a role that merely trusts a certificate never reads a key it does not own.
 */
export interface LoadedCertificate {
  certPath: string;
  /** The key's file, or the pkcs11: URI of a key in a token (`pki init --pkcs11`). */
  keyPath: string;
  /** PEM as on disk. */
  pem: string;
  certificate: X509Certificate;
  /** DER of the certificate (what x5c, OCSP CertID hashing and TLS want). */
  der: Buffer;
  /** The key as a KeyObject: file keys only (a TLS identity needs one); a token key throws. */
  privateKey(): KeyObject;
  /**
   * The key that signs (file or token), checked once against the certificate's public key: a
   * mismatch is SIMCRED_CONFIG_INVALID, a token that cannot be opened SIMCRED_KEY_STORE_UNAVAILABLE.
   */
  signingKey(): SigningKey;
}

export interface LoadedPki {
  dir: string;
  manifest: PkiManifest;
  manufacturer: { root: LoadedCertificate; deviceCa: LoadedCertificate; deviceCaOcsp: LoadedCertificate };
  operator: {
    root: LoadedCertificate;
    operatorCa: LoadedCertificate;
    operatorCaOcsp: LoadedCertificate;
    packageSigner: LoadedCertificate;
    tls: Record<TlsRole, LoadedCertificate>;
  };
  /** Per issuing CA (the OCSP responder's view): the CA certificate and its delegated OCSP signer. */
  issuers: Record<
    IssuerName,
    { ca: LoadedCertificate; ocspSigner: LoadedCertificate; root: LoadedCertificate }
  >;
}

/**
 * Reads the PKI folder made by `simcred pki init`.
 *
 * @example
 *   const pki = await loadPki('/data/pki');
 *   const tls = pki.operator.tls.ocsp;
 *   https.createServer({ cert: tls.pem, key: tls.privateKey(), ca: pki.operator.root.pem });
 *   pki.issuers['device-ca'].ocspSigner.certificate.subject;
 */
export async function loadPki(dirArg: string): Promise<LoadedPki> {
  const dir = resolve(dirArg);
  const manifest = readManifest(dir);
  const load = (paths: CertKeyPaths): LoadedCertificate =>
    loadCertificate(join(dir, paths.cert), isPkcs11Uri(paths.key) ? paths.key : join(dir, paths.key));
  const m = manifest.manufacturer;
  const o = manifest.operator;
  const manufacturer = { root: load(m.root), deviceCa: load(m.deviceCa), deviceCaOcsp: load(m.deviceCaOcsp) };
  const operator = {
    root: load(o.root),
    operatorCa: load(o.operatorCa),
    operatorCaOcsp: load(o.operatorCaOcsp),
    packageSigner: load(o.packageSigner),
    tls: Object.fromEntries(TLS_ROLES.map((role) => [role, load(o.tls[role])])) as Record<
      TlsRole,
      LoadedCertificate
    >,
  };
  return {
    dir,
    manifest,
    manufacturer,
    operator,
    issuers: {
      'device-ca': {
        ca: manufacturer.deviceCa,
        ocspSigner: manufacturer.deviceCaOcsp,
        root: manufacturer.root,
      },
      'operator-ca': { ca: operator.operatorCa, ocspSigner: operator.operatorCaOcsp, root: operator.root },
    },
  };
}

/**
 * A certificate file and its (lazily loaded) PKCS#8 key file.
 *
 * @example
 *   const signer = loadCertificate('operator/package-signer.crt.pem', 'operator/package-signer.key.pem');
 */
export function loadCertificate(certPath: string, keyPath: string): LoadedCertificate {
  const pem = readText(certPath);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(pem);
  } catch (err) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${certPath} is not a PEM certificate`, {
      cause: err,
    });
  }
  let key: KeyObject | undefined;
  let signer: SigningKey | undefined;
  return {
    certPath,
    keyPath,
    pem,
    certificate,
    der: Buffer.from(certificate.raw),
    privateKey: () => {
      if (isPkcs11Uri(keyPath)) {
        throw new SimcredError(
          'SIMCRED_CONFIG_INVALID',
          `the key of ${certPath} is in a PKCS#11 token (${keyPath}); it signs there and cannot be read`,
        );
      }
      return (key ??= loadPrivateKey(keyPath));
    },
    signingKey: () =>
      (signer ??= loadPkiSigningKey('/', keyPath, { publicKey: certificate.publicKey, name: certPath })),
  };
}

export interface LoadedFactoryImage {
  /** The device folder, devices/<DSIM_ID>. */
  dir: string;
  image: FactoryImage;
  certificatePem: string;
  certificate: X509Certificate;
  /** The device certificate followed by its chain (device CA), as the device presents it. */
  chainPem: string[];
  /** The trusted module the image names (software unless `module: 'tpm'`). */
  module: DeviceModuleKind;
  /**
   * SK_dsim of a software device. A TPM device has none outside its TPM: reading it throws
   * SIMCRED_PKI_INCONSISTENT (its module signs and agrees keys in the TPM; src/device/tpm-module.ts).
   */
  readonly privateKey: KeyObject;
}

/**
 * What a simulated device holds when it leaves the factory: its image (checked against
 * factoryImageSchema), certificate and key.
 *
 * @example
 *   const device = await loadFactoryImage('/data/pki', 'DSIM0123456789ABCDEF');
 *   device.image.preliminary.pimsi; // '001010000000000'
 *   sign('sha256', challenge, device.privateKey);
 */
export async function loadFactoryImage(pkiDir: string, dsimId: string): Promise<LoadedFactoryImage> {
  const { dir, image } = readFactoryImageAt(pkiDir, dsimId);
  const module = moduleOf(image);
  const loaded = loadCertificate(join(dir, image.certificate), join(dir, image.privateKey ?? ''));
  const common = {
    dir,
    image,
    certificatePem: loaded.pem,
    certificate: loaded.certificate,
    chainPem: [loaded.pem, ...image.chainPem],
    module,
  };
  if (module === 'software') return { ...common, privateKey: loaded.privateKey() };
  return Object.defineProperty(common, 'privateKey', {
    enumerable: false,
    get(): never {
      throw new SimcredError(
        'SIMCRED_PKI_INCONSISTENT',
        `the device key of ${dsimId} is in its TPM: there is no private key to read`,
      );
    },
  }) as LoadedFactoryImage;
}

/**
 * A device's factory.json alone (no key or certificate read), checked against factoryImageSchema.
 *
 * @example
 *   const image = readFactoryImage('/data/pki', 'DSIM0123456789ABCDEF');
 *   image.registrationServer; // 'https://127.0.0.1:7411'
 */
export function readFactoryImage(pkiDir: string, dsimId: string): FactoryImage {
  return readFactoryImageAt(pkiDir, dsimId).image;
}

function readFactoryImageAt(pkiDir: string, dsimId: string): { dir: string; image: FactoryImage } {
  // The ID becomes a path: anything but the DSIM_ID format is refused before touching the disk.
  if (!DSIM_ID_PATTERN.test(dsimId)) {
    throw new SimcredError(
      'SIMCRED_BAD_REQUEST',
      `${JSON.stringify(dsimId)} is not a DSIM_ID (DSIM + 16 hex digits)`,
    );
  }
  const dir = deviceDir(resolve(pkiDir), dsimId);
  const imagePath = join(dir, 'factory.json');
  if (!fileExists(imagePath)) {
    throw new SimcredError(
      'SIMCRED_PKI_UNKNOWN_DEVICE',
      `no factory image for ${dsimId} in ${resolve(pkiDir)}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(readText(imagePath));
  } catch (err) {
    if (err instanceof SimcredError) throw err;
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${imagePath} is not valid JSON`, { cause: err });
  }
  const image = parseFactoryImage(json, imagePath);
  if (image.dsimId !== dsimId) {
    throw new SimcredError('SIMCRED_PKI_INCONSISTENT', `${imagePath} is not the factory image of ${dsimId}`);
  }
  return { dir, image };
}

/**
 * Opens the CA's records (ca.db) of a PKI folder.
 *
 * @example
 *   const store = await openCaStore('/data/pki');
 */
export function openCaStore(pkiDir: string): Promise<CaStore> {
  return CaStore.open(resolve(pkiDir));
}
