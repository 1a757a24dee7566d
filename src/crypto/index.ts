/**
 * Shared cryptography of the credentialing flow (DESIGN §2 steps 3–5, 11–12, §3); docs/crypto.md
 * describes every construction and its exact bytes.
 */
export * from './algorithms.js';
export * as x509 from './x509.js';
export { fromBase64url, keyKind, lengthPrefixed, toBase64url, toPublicKey, utf8 } from './encoding.js';
export type { PublicKeyInput } from './encoding.js';
export {
  computeSessionNonce,
  verifySessionNonce,
  randomNonce,
  SESSION_NONCE_LABEL,
  REGISTRATION_NONCE_BYTES,
  SESSION_NONCE_BYTES,
  DEVICE_NONCE_MIN_BYTES,
  DEVICE_NONCE_MAX_BYTES,
  DSIM_ID_MAX_BYTES,
} from './session-nonce.js';
export type { SessionNonceInput } from './session-nonce.js';
export {
  proofOfPossessionMessage,
  signProofOfPossession,
  verifyProofOfPossession,
  POP_LABEL,
  CHALLENGE_MIN_BYTES,
  CHALLENGE_MAX_BYTES,
} from './proof-of-possession.js';
export type { ProofOfPossession, ProofOfPossessionInput } from './proof-of-possession.js';
export { signReceipt, verifyReceipt, RECEIPT_TYPE } from './receipt.js';
export {
  deviceKeyKind,
  isExternalDeviceKey,
  signDeviceMessageWith,
  type DevicePrivateKey,
  type ExternalDeviceKey,
} from './device-key.js';
export type { ReceiptClaims } from './receipt.js';
export {
  certificatePublicKey,
  publicKeyOfCertificateDer,
  certificateStats,
  clearCertificateCaches,
  parseCertificateBase64,
  parseCertificates,
  verifyChain,
  MAX_CHAIN_CERTIFICATES,
  MAX_CERTIFICATE_BYTES,
} from './certificates.js';
export type { CertificateInput, ChainOptions } from './certificates.js';
export {
  sealPackage,
  inspectPackage,
  openPackage,
  PACKAGE_TYPE,
  CREDENTIALS_CONTENT_TYPE,
  MAX_PACKAGE_CHARS,
  MAX_PACKAGE_TTL_SECONDS,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DSIM_URN_PREFIX,
} from './package.js';
export type {
  Credentials,
  SealPackageInput,
  VerifyPackageOptions,
  OpenPackageOptions,
  PackageInfo,
} from './package.js';
export { sealXmlPackage, inspectXmlPackage, openXmlPackage, XML_PACKAGE_NAMESPACE } from './xml-package.js';
export type { OpenXmlPackageOptions } from './xml-package.js';
export {
  PACKAGE_FORMATS,
  DEFAULT_PACKAGE_FORMAT,
  packageFormatOf,
  choosePackageFormat,
  sealPackageAs,
  inspectAnyPackage,
  openAnyPackage,
} from './package-format.js';
export type { PackageFormat } from './package-format.js';
export {
  sealSecret,
  openSecret,
  parseKek,
  kekId,
  KEK_BYTES,
  SECRET_BOX_VERSION,
  SECRET_BOX_TOKEN_VERSION,
  parseSealedSecret,
  secretBoxAad,
} from './secret-box.js';
