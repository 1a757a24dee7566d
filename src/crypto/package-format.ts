/**
 * The two credential package formats behind one door (DESIGN §3): the JOSE package (package.ts, the
 * default) and the XML package (xml-package.ts). A package says which it is by its first character: an
 * XML document starts with '<', a compact JWS with base64url. Both bind and verify alike.
 */
import type { DevicePrivateKey } from './device-key.js';
import type * as x509 from './x509.js';
import { SimcredError } from '../errors/index.js';
import { inspectPackage, openPackage, sealPackage } from './package.js';
import { inspectXmlPackage, openXmlPackage, sealXmlPackage } from './xml-package.js';
import type { Credentials, PackageInfo, SealInput, VerifyPackageOptions } from './package-common.js';

/** The package formats, the first the default (a factory image without `packageFormats` takes JOSE only). */
export const PACKAGE_FORMATS = ['jose', 'xml'] as const;
export type PackageFormat = (typeof PACKAGE_FORMATS)[number];
export const DEFAULT_PACKAGE_FORMAT: PackageFormat = 'jose';

/**
 * The format of a package as carried: '<' (after any leading whitespace or byte-order mark) is XML,
 * anything else is taken for a compact JWS (whose own checks then refuse what is not one).
 *
 * @example
 *   packageFormatOf('<CredentialPackage …'); // 'xml'
 *   packageFormatOf('eyJhbGciOi…');          // 'jose'
 */
export function packageFormatOf(text: string): PackageFormat {
  if (typeof text !== 'string') {
    throw new SimcredError('SIMCRED_PACKAGE_MALFORMED', 'the package is not text');
  }
  return /^[\uFEFF\s]*</.test(text) ? 'xml' : 'jose';
}

/**
 * Seals a package in `format`.
 *
 * @example
 *   const text = await sealPackageAs('xml', { credentials, dsimId, deviceNonce, devicePublicKey: deviceCert,
 *     operatorSigningKey, operatorChainPem, ttlSeconds: 86400 });
 */
export function sealPackageAs(format: PackageFormat, input: SealInput): Promise<string> {
  return format === 'xml' ? sealXmlPackage(input) : sealPackage(input);
}

/**
 * {@link inspectPackage} or {@link inspectXmlPackage}, as the package's first character says.
 *
 * @example
 *   const info = await inspectAnyPackage(text, { operatorRoots });
 */
export function inspectAnyPackage(
  text: string,
  options: VerifyPackageOptions & { allowExpired?: boolean },
): Promise<PackageInfo> {
  return packageFormatOf(text) === 'xml' ? inspectXmlPackage(text, options) : inspectPackage(text, options);
}

/**
 * {@link openPackage} or {@link openXmlPackage}, as the package's first character says.
 *
 * @example
 *   const { credentials } = await openAnyPackage(text, { operatorRoots, dsimId, deviceNonce, devicePrivateKey });
 */
export function openAnyPackage(
  text: string,
  options: VerifyPackageOptions & {
    dsimId: string;
    deviceNonce: Uint8Array;
    devicePrivateKey: DevicePrivateKey;
  },
): Promise<{
  credentials: Credentials;
  packageId: string;
  exp: number;
  signerCertificate: x509.X509Certificate;
  issuerCertificate: x509.X509Certificate;
}> {
  return packageFormatOf(text) === 'xml' ? openXmlPackage(text, options) : openPackage(text, options);
}

/**
 * The package format for a device: the first of the deployment's formats (default: JOSE, then XML) that
 * the device opens (a device that names none opens JOSE only, as every device did before the XML
 * package). None in common: SIMCRED_PACKAGE_FORMAT_UNSUPPORTED.
 *
 * @example
 *   choosePackageFormat(['jose', 'xml'], ['xml']); // 'xml'
 */
export function choosePackageFormat(
  deployment: readonly PackageFormat[] = ['jose', 'xml'],
  device: readonly PackageFormat[] = [DEFAULT_PACKAGE_FORMAT],
): PackageFormat {
  const chosen = deployment.find((format) => device.includes(format));
  if (chosen === undefined) {
    throw new SimcredError(
      'SIMCRED_PACKAGE_FORMAT_UNSUPPORTED',
      `the device opens ${device.join(', ')}; this deployment seals ${deployment.join(', ')}`,
    );
  }
  return chosen;
}
