/**
 * The XML credential package (DESIGN §3, "interoperable with xmlsec1"; docs/crypto.md §6b): the same
 * content and bindings as the JOSE package (package.ts), as XML Encryption 1.1 inside an enveloped XML
 * Signature. Who does what: @xmldom/xmldom parses (hardened by xml-safe.ts); xml-crypto signs and
 * verifies (ECDSA-SHA256 added in xml-signature.ts); xml-encryption does RSA-OAEP key transport and
 * AES-256-GCM for RSA devices; ECDH-ES with ConcatKDF and AES key wrap for EC devices is written here
 * on node:crypto (xml-key-agreement.ts), as no maintained Node library has it.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { DOMImplementation, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import * as xmlEncryption from 'xml-encryption';
import * as x509 from './x509.js';
import { SimcredError } from '../errors/index.js';
import { XML_ALGORITHMS, XML_KEY_MANAGEMENT_ALGORITHM, XML_SIGNATURE_ALGORITHM } from './algorithms.js';
import { certificatePublicKey, parseCertificateBase64, MAX_CHAIN_CERTIFICATES } from './certificates.js';
import { fromBase64url, keyKind, toBase64url, type PublicKeyInput } from './encoding.js';
import { checkDsimId, DEVICE_NONCE_MAX_BYTES, DEVICE_NONCE_MIN_BYTES } from './session-nonce.js';
import {
  checkNotExpired,
  checkSealInput,
  credentialsSchema,
  fail,
  verifyOperatorChain,
  withCompactJson,
  type Credentials,
  type PackageInfo,
  type SealInput,
  type VerifyPackageOptions,
} from './package-common.js';
import {
  descendantsNamed,
  elementChildren,
  leafText,
  parseXmlStrict,
  XML_PACKAGE_LIMITS,
} from './xml-safe.js';
import {
  AES256_KEY_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  ecdhEsUnwrapKey,
  ecdhEsUnwrapKeyWithZ,
  ecdhEsWrapKey,
  toBitStringHex,
  type ConcatKdfParams,
} from './xml-key-agreement.js';
import { signEnveloped, verifyEnveloped } from './xml-signature.js';
import { deviceKeyKind, isExternalDeviceKey, type DevicePrivateKey } from './device-key.js';

/** The namespace of simcred's own XML package elements. */
export const XML_PACKAGE_NAMESPACE = 'urn:simcred:xml-package:1';
export const DSIG_NAMESPACE = 'http://www.w3.org/2000/09/xmldsig#';
const DSIG11_NAMESPACE = 'http://www.w3.org/2009/xmldsig11#';
export const XENC_NAMESPACE = 'http://www.w3.org/2001/04/xmlenc#';
const XENC11_NAMESPACE = 'http://www.w3.org/2009/xmlenc11#';
const XMLNS_NAMESPACE = 'http://www.w3.org/2000/xmlns/';
const ELEMENT_TYPE = 'http://www.w3.org/2001/04/xmlenc#Element';

/** The signed fields, in document order, before the EncryptedData. */
const PACKAGE_FIELDS = ['PackageId', 'DsimId', 'DeviceNonce', 'IssuedAt', 'Expires'] as const;
/** The sealed content's fields, in document order: the binding again, then the credentials. */
const CREDENTIAL_FIELDS = [
  ['Imsi', 'imsi'],
  ['K', 'k'],
  ['OPc', 'opc'],
  ['Amf', 'amf'],
  ['Sqn', 'sqn'],
  ['Plmn', 'plmn'],
] as const;

interface PackageFields {
  packageId: string;
  dsimId: string;
  deviceNonce: string;
  iat: number;
  exp: number;
}

/**
 * HSS, DESIGN §2 step 5 and §3: the XML form of {@link sealPackage}. Seals a Credentials document
 * (the binding — package id, DSIM_ID, device nonce, iat, exp — and IMSI, K, OPc, AMF, SQN, PLMN) as an
 * xenc:EncryptedData (AES-256-GCM) whose content key goes to the device key (RSA: rsa-oaep-mgf1p in an
 * EncryptedKey; EC P-256: ECDH-ES + ConcatKDF + kw-aes256), puts it in a CredentialPackage beside the
 * same binding in clear, and signs the whole with an enveloped XML Signature (ECDSA-SHA256, exclusive
 * c14n, X509Data = the operator chain). An RSA device needs its certificate as `devicePublicKey`
 * (xml-encryption writes it into the EncryptedKey's KeyInfo). Throws as sealPackage does.
 *
 * @example
 *   const xml = await sealXmlPackage({ credentials, dsimId, deviceNonce, devicePublicKey: deviceCertPem,
 *     operatorSigningKey, operatorChainPem: [signerPem, caPem], ttlSeconds: 86400 });
 */
export async function sealXmlPackage(input: SealInput): Promise<string> {
  const checked = checkSealInput(input);
  const fields: PackageFields = {
    packageId: checked.packageId,
    dsimId: input.dsimId,
    deviceNonce: toBase64url(input.deviceNonce),
    iat: checked.iat,
    exp: checked.exp,
  };
  const plaintext = credentialsXml(fields, checked.credentials);
  const encryptedData =
    checked.deviceKind === 'rsa'
      ? await encryptForRsaDevice(plaintext, checked.deviceKey, input.devicePublicKey)
      : encryptForEcDevice(plaintext, checked.deviceKey, fields.dsimId);

  const doc = newDocument('CredentialPackage');
  const root = doc.documentElement!;
  root.setAttribute('Version', '1');
  appendFields(doc, root, PACKAGE_FIELDS, packageFieldValues(fields));
  root.appendChild(doc.importNode(encryptedData, true));
  return signEnveloped(new XMLSerializer().serializeToString(doc), {
    kind: checked.signerKind,
    signer: checked.signer,
    chainBase64: checked.chain.map((c) => Buffer.from(c.rawData).toString('base64')),
  });
}

/** What the verification of the envelope yields: the signed fields and the signed EncryptedData. */
interface VerifiedXmlPackage {
  fields: PackageFields;
  info: PackageInfo;
  /** The xenc:EncryptedData of the signed (canonical) document, never of the text as received. */
  encryptedData: Element;
  sealed: SealedKey;
}

/**
 * Provisioning and credentialing servers: the XML form of {@link inspectPackage}. Checks the document
 * (hardened parse, shape), exactly one enveloped signature over the document element, the X509Data
 * chain to `operatorRoots` with the package-signer role, the signature (allow-listed algorithms
 * only), the signed fields and the EncryptedData's algorithms, and `exp` unless allowExpired. Reads
 * only what the signature covers. Returns the binding and signer — never K or OPc.
 *
 * @example
 *   const info = await inspectXmlPackage(xml, { operatorRoots: [operatorRootPem] });
 */
export async function inspectXmlPackage(
  xml: string,
  options: VerifyPackageOptions & { allowExpired?: boolean },
): Promise<PackageInfo> {
  const verified = await verifyXmlEnvelope(xml, options);
  if (!options.allowExpired) checkNotExpired(verified.fields.exp, options);
  return verified.info;
}

export interface OpenXmlPackageOptions extends VerifyPackageOptions {
  dsimId: string;
  deviceNonce: Uint8Array;
  /** SK_dsim: in memory, or in a TPM (which computes the ECDH shared secret). */
  devicePrivateKey: DevicePrivateKey;
}

/**
 * Device (trusted module), DESIGN §2 step 11: the XML form of {@link openPackage}. Verifies as
 * {@link inspectXmlPackage}, checks the device's own DSIM_ID and nonce (SIMCRED_PACKAGE_BINDING_MISMATCH)
 * and expiry, decrypts with SK_dsim (SIMCRED_PACKAGE_DECRYPT_FAILED), and checks that the sealed
 * document repeats the signed binding and carries well-formed credentials.
 *
 * @example
 *   const { credentials } = await openXmlPackage(xml, { operatorRoots, dsimId, deviceNonce, devicePrivateKey });
 */
export async function openXmlPackage(
  xml: string,
  options: OpenXmlPackageOptions,
): Promise<{
  credentials: Credentials;
  packageId: string;
  exp: number;
  signerCertificate: x509.X509Certificate;
  issuerCertificate: x509.X509Certificate;
}> {
  const { fields, info, encryptedData, sealed } = await verifyXmlEnvelope(xml, options);
  if (fields.dsimId !== options.dsimId) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the package is for another DSIM_ID');
  }
  if (
    !(options.deviceNonce instanceof Uint8Array) ||
    fields.deviceNonce !== toBase64url(options.deviceNonce)
  ) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the package does not carry this session’s device nonce');
  }
  checkNotExpired(fields.exp, options);

  const plaintext = await decryptSealed(encryptedData, sealed, options.devicePrivateKey);
  let content: { fields: PackageFields; credentials: Credentials };
  try {
    content = readCredentialsXml(plaintext);
  } catch {
    // No cause: the error could quote decrypted values.
    return fail('SIMCRED_PACKAGE_MALFORMED', 'the decrypted credentials are malformed');
  }
  if (
    content.fields.packageId !== fields.packageId ||
    content.fields.dsimId !== fields.dsimId ||
    content.fields.deviceNonce !== fields.deviceNonce
  ) {
    fail('SIMCRED_PACKAGE_BINDING_MISMATCH', 'the sealed credentials are bound to another package');
  }
  if (content.fields.iat !== fields.iat || content.fields.exp !== fields.exp) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the sealed and signed validity periods differ');
  }
  return {
    credentials: content.credentials,
    packageId: fields.packageId,
    exp: fields.exp,
    signerCertificate: info.signerCertificate,
    issuerCertificate: info.issuerCertificate,
  };
}

// ——— verification ———

async function verifyXmlEnvelope(xml: string, options: VerifyPackageOptions): Promise<VerifiedXmlPackage> {
  const doc = parseXmlStrict(xml, XML_PACKAGE_LIMITS);
  const root = doc.documentElement!;
  if (root.localName !== 'CredentialPackage' || root.namespaceURI !== XML_PACKAGE_NAMESPACE) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the document element is not a simcred CredentialPackage');
  }
  const signatures = descendantsNamed(root, DSIG_NAMESPACE, 'Signature');
  if (signatures.length !== 1) {
    fail(
      'SIMCRED_XML_SIGNATURE_NOT_SINGLE',
      `the package holds ${signatures.length} XML signatures, not one`,
    );
  }
  const signature = signatures[0]!;
  const rootChildren = elementChildren(root);
  if (signature.parentNode !== root || rootChildren[rootChildren.length - 1] !== signature) {
    fail('SIMCRED_XML_SIGNATURE_WRAPPED', 'the signature is not the last child of the document element');
  }
  const { method, kind: signatureKind } = checkSignedInfo(signature, root);
  const presented = readX509Chain(signature);
  const chain = await verifyOperatorChain(presented, options);
  const signerCertificate = chain[0]!;
  const signerKey = certificatePublicKey(signerCertificate);
  if (keyKind(signerKey) !== signatureKind) {
    fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', `${method} does not fit the signer's key`);
  }
  const publicKeyPem = spkiPem(signerKey);
  let signedXml: string;
  try {
    signedXml = verifyEnveloped(xml, signature, {
      kind: signatureKind,
      publicKeyPem,
    });
  } catch (cause) {
    return fail('SIMCRED_PACKAGE_SIGNATURE_INVALID', 'the operator signature does not verify', cause);
  }
  // From here on only the signed, canonical document is read (no wrapping can slip content in).
  const signedRoot = parseXmlStrict(signedXml, XML_PACKAGE_LIMITS).documentElement!;
  const { fields, encryptedData } = readPackageFields(signedRoot);
  const sealed = readEncryptedData(encryptedData);
  const info = withCompactJson({
    ...fields,
    signerCertificate,
    issuerCertificate: chain[1]!,
    chain,
    keyManagement:
      sealed.kind === 'rsa' ? XML_KEY_MANAGEMENT_ALGORITHM.rsa : XML_KEY_MANAGEMENT_ALGORITHM['ec-p256'],
  });
  return { fields, info, encryptedData, sealed };
}

/** SignedInfo: exc-c14n, an allow-listed SignatureMethod, exactly one Reference to the whole document. */
function checkSignedInfo(signature: Element, root: Element): { method: string; kind: 'ec-p256' | 'rsa' } {
  const parts = elementChildren(signature);
  const signedInfo = parts[0];
  if (signedInfo === undefined || !isNamed(signedInfo, DSIG_NAMESPACE, 'SignedInfo')) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the signature has no SignedInfo first');
  }
  const [c14n, signatureMethod, ...references] = elementChildren(signedInfo);
  if (
    c14n === undefined ||
    !isNamed(c14n, DSIG_NAMESPACE, 'CanonicalizationMethod') ||
    signatureMethod === undefined ||
    !isNamed(signatureMethod, DSIG_NAMESPACE, 'SignatureMethod')
  ) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'SignedInfo lacks its CanonicalizationMethod or SignatureMethod');
  }
  if (references.length !== 1 || !references.every((r) => isNamed(r, DSIG_NAMESPACE, 'Reference'))) {
    fail('SIMCRED_XML_SIGNATURE_NOT_SINGLE', 'SignedInfo must hold exactly one Reference');
  }
  const reference = references[0]!;
  const uri = reference.getAttribute('URI');
  const rootId = root.getAttribute('Id');
  if (!(uri === '' || (rootId !== null && rootId !== '' && uri === `#${rootId}`))) {
    fail('SIMCRED_XML_SIGNATURE_WRAPPED', 'the signature reference does not cover the document element');
  }
  if (
    c14n.getAttribute('Algorithm') !== XML_ALGORITHMS.canonicalization ||
    elementChildren(c14n).length > 0
  ) {
    fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', 'the canonicalisation method is not exclusive c14n');
  }
  const method = signatureMethod.getAttribute('Algorithm') ?? '';
  const kind = (Object.keys(XML_SIGNATURE_ALGORITHM) as ('ec-p256' | 'rsa')[]).find(
    (k) => XML_SIGNATURE_ALGORITHM[k] === method,
  );
  if (kind === undefined) fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', 'the signature method is not allowed');
  const [transforms, digestMethod, digestValue, ...rest] = elementChildren(reference);
  const transformList =
    transforms && isNamed(transforms, DSIG_NAMESPACE, 'Transforms') ? elementChildren(transforms) : [];
  if (
    transformList.length !== 2 ||
    transformList[0]!.getAttribute('Algorithm') !== XML_ALGORITHMS.envelopedSignature ||
    transformList[1]!.getAttribute('Algorithm') !== XML_ALGORITHMS.canonicalization ||
    transformList.some((t) => !isNamed(t, DSIG_NAMESPACE, 'Transform') || elementChildren(t).length > 0)
  ) {
    fail(
      'SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED',
      'the reference transforms must be enveloped-signature, exc-c14n',
    );
  }
  if (
    digestMethod === undefined ||
    !isNamed(digestMethod, DSIG_NAMESPACE, 'DigestMethod') ||
    digestMethod.getAttribute('Algorithm') !== XML_ALGORITHMS.digest ||
    digestValue === undefined ||
    !isNamed(digestValue, DSIG_NAMESPACE, 'DigestValue') ||
    rest.length > 0
  ) {
    fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', 'the reference digest must be SHA-256');
  }
  return { method, kind };
}

/** KeyInfo/X509Data/X509Certificate: 1–4 certificates, signer first. */
function readX509Chain(signature: Element): x509.X509Certificate[] {
  const keyInfo = elementChildren(signature).find((e) => isNamed(e, DSIG_NAMESPACE, 'KeyInfo'));
  const x509Data = keyInfo
    ? elementChildren(keyInfo).filter((e) => isNamed(e, DSIG_NAMESPACE, 'X509Data'))
    : [];
  if (x509Data.length !== 1) fail('SIMCRED_PACKAGE_MALFORMED', 'the signature has no single X509Data');
  const certificates = elementChildren(x509Data[0]!).filter((e) =>
    isNamed(e, DSIG_NAMESPACE, 'X509Certificate'),
  );
  if (certificates.length === 0 || certificates.length > MAX_CHAIN_CERTIFICATES) {
    fail('SIMCRED_PACKAGE_MALFORMED', `X509Data must hold 1–${MAX_CHAIN_CERTIFICATES} certificates`);
  }
  // xmlsec1 and others wrap base64 at 64 columns.
  return certificates.map((c) =>
    parseCertificateBase64(leafText(c).replace(/[\r\n\t ]/g, ''), 'SIMCRED_PACKAGE_MALFORMED'),
  );
}

function readPackageFields(root: Element): { fields: PackageFields; encryptedData: Element } {
  if (root.localName !== 'CredentialPackage' || root.namespaceURI !== XML_PACKAGE_NAMESPACE) {
    fail('SIMCRED_PACKAGE_MALFORMED', 'the signed element is not a CredentialPackage');
  }
  checkOnlyAttributes(root, ['Version', 'Id']);
  if (root.getAttribute('Version') !== '1') fail('SIMCRED_PACKAGE_MALFORMED', 'the package Version is not 1');
  const children = elementChildren(root);
  const values = readFieldElements(children.slice(0, PACKAGE_FIELDS.length), PACKAGE_FIELDS);
  const encryptedData = children[PACKAGE_FIELDS.length];
  if (
    values === undefined ||
    children.length !== PACKAGE_FIELDS.length + 1 ||
    encryptedData === undefined ||
    !isNamed(encryptedData, XENC_NAMESPACE, 'EncryptedData')
  ) {
    return fail(
      'SIMCRED_PACKAGE_MALFORMED',
      'the package fields are not PackageId, DsimId, DeviceNonce, IssuedAt, Expires, EncryptedData',
    );
  }
  return { fields: parseFieldValues(values), encryptedData };
}

/** The signed (or sealed) binding fields, checked as the JOSE payload's are. */
function parseFieldValues(values: string[]): PackageFields {
  const code = 'SIMCRED_PACKAGE_MALFORMED';
  const [packageId, dsimId, deviceNonce, iatText, expText] = values as [
    string,
    string,
    string,
    string,
    string,
  ];
  try {
    if (packageId.length === 0 || packageId.length > 128) throw new Error('package id length');
    checkDsimId(dsimId);
    const nonce = fromBase64url(deviceNonce, 'DeviceNonce');
    if (nonce.length < DEVICE_NONCE_MIN_BYTES || nonce.length > DEVICE_NONCE_MAX_BYTES)
      throw new Error('nonce length');
    if (!/^(0|[1-9][0-9]{0,11})$/.test(iatText) || !/^[1-9][0-9]{0,11}$/.test(expText))
      throw new Error('times');
  } catch (cause) {
    return fail(code, 'the package fields are malformed', cause);
  }
  const iat = Number(iatText);
  const exp = Number(expText);
  if (iat > exp) fail(code, 'the package iat is after its exp');
  return { packageId, dsimId, deviceNonce, iat, exp };
}

/** The sealed key's form, as read (and algorithm-checked) from the signed EncryptedData. */
type SealedKey =
  { kind: 'rsa' } | { kind: 'ec-p256'; wrappedKey: Buffer; originatorPoint: Buffer; kdf: ConcatKdfParams };

/**
 * EncryptedData: Type Element, aes256-gcm, KeyInfo holding one EncryptedKey — rsa-oaep-mgf1p (SHA-1
 * digest), or kw-aes256 under an ECDH-ES AgreementMethod with ConcatKDF / SHA-256 and a P-256
 * originator key. Anything else is refused before any decryption.
 */
function readEncryptedData(encryptedData: Element): SealedKey {
  const notAllowed = (what: string) =>
    fail('SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED', `the sealed credentials' ${what} is not allowed`);
  const malformed = (what: string) =>
    fail('SIMCRED_PACKAGE_MALFORMED', `the sealed credentials' ${what} is malformed`);
  const [method, keyInfo, cipherData, ...rest] = elementChildren(encryptedData);
  if (
    !method ||
    !isNamed(method, XENC_NAMESPACE, 'EncryptionMethod') ||
    !keyInfo ||
    !isNamed(keyInfo, DSIG_NAMESPACE, 'KeyInfo') ||
    !cipherData ||
    !isNamed(cipherData, XENC_NAMESPACE, 'CipherData') ||
    rest.length > 0
  ) {
    return malformed('EncryptedData');
  }
  if (method.getAttribute('Algorithm') !== XML_ALGORITHMS.contentEncryption)
    return notAllowed('content encryption');
  if (encryptedData.getAttribute('Type') !== ELEMENT_TYPE) return malformed('EncryptedData Type');
  cipherValueOf(cipherData);
  const encryptedKeys = elementChildren(keyInfo);
  const encryptedKey = encryptedKeys[0];
  if (encryptedKeys.length !== 1 || !encryptedKey || !isNamed(encryptedKey, XENC_NAMESPACE, 'EncryptedKey')) {
    return malformed('KeyInfo');
  }
  const keyParts = elementChildren(encryptedKey);
  const keyMethod = keyParts[0];
  const keyCipher = keyParts[keyParts.length - 1];
  if (
    !keyMethod ||
    !isNamed(keyMethod, XENC_NAMESPACE, 'EncryptionMethod') ||
    !keyCipher ||
    !isNamed(keyCipher, XENC_NAMESPACE, 'CipherData')
  ) {
    return malformed('EncryptedKey');
  }
  const wrappedKey = cipherValueOf(keyCipher);
  const keyAlgorithm = keyMethod.getAttribute('Algorithm');
  if (keyAlgorithm === XML_ALGORITHMS.rsaKeyTransport) {
    const params = elementChildren(keyMethod);
    if (
      params.length > 1 ||
      (params.length === 1 &&
        !(
          isNamed(params[0]!, DSIG_NAMESPACE, 'DigestMethod') &&
          params[0]!.getAttribute('Algorithm') === XML_ALGORITHMS.rsaOaepDigest
        ))
    ) {
      return notAllowed('RSA-OAEP digest or parameter');
    }
    return { kind: 'rsa' };
  }
  if (keyAlgorithm !== XML_ALGORITHMS.keyWrap || elementChildren(keyMethod).length > 0)
    return notAllowed('key management');
  const keyKeyInfo = keyParts.find((e) => isNamed(e, DSIG_NAMESPACE, 'KeyInfo'));
  const agreement = keyKeyInfo ? elementChildren(keyKeyInfo) : [];
  if (agreement.length !== 1 || !isNamed(agreement[0]!, XENC_NAMESPACE, 'AgreementMethod'))
    return malformed('AgreementMethod');
  if (agreement[0]!.getAttribute('Algorithm') !== XML_ALGORITHMS.ecdhKeyAgreement)
    return notAllowed('key agreement');
  const agreementParts = elementChildren(agreement[0]!);
  const derivation = agreementParts.find((e) => isNamed(e, XENC11_NAMESPACE, 'KeyDerivationMethod'));
  const originator = agreementParts.find((e) => isNamed(e, XENC_NAMESPACE, 'OriginatorKeyInfo'));
  if (!derivation || !originator) return malformed('AgreementMethod');
  if (derivation.getAttribute('Algorithm') !== XML_ALGORITHMS.keyDerivation)
    return notAllowed('key derivation');
  const [kdfParams, ...moreKdf] = elementChildren(derivation);
  if (!kdfParams || moreKdf.length > 0 || !isNamed(kdfParams, XENC11_NAMESPACE, 'ConcatKDFParams'))
    return malformed('ConcatKDFParams');
  const kdfDigest = elementChildren(kdfParams);
  if (
    kdfDigest.length !== 1 ||
    !isNamed(kdfDigest[0]!, DSIG_NAMESPACE, 'DigestMethod') ||
    kdfDigest[0]!.getAttribute('Algorithm') !== XML_ALGORITHMS.digest
  ) {
    return notAllowed('ConcatKDF digest');
  }
  const kdf: ConcatKdfParams = {
    algorithmId: kdfParams.getAttribute('AlgorithmID') ?? '',
    partyUInfo: kdfParams.getAttribute('PartyUInfo') ?? '',
    partyVInfo: kdfParams.getAttribute('PartyVInfo') ?? '',
  };
  const keyValue = elementChildren(originator).find((e) => isNamed(e, DSIG_NAMESPACE, 'KeyValue'));
  const ecKeyValue = keyValue
    ? elementChildren(keyValue).find((e) => isNamed(e, DSIG11_NAMESPACE, 'ECKeyValue'))
    : undefined;
  const ecParts = ecKeyValue ? elementChildren(ecKeyValue) : [];
  const curve = ecParts.find((e) => isNamed(e, DSIG11_NAMESPACE, 'NamedCurve'));
  const point = ecParts.find((e) => isNamed(e, DSIG11_NAMESPACE, 'PublicKey'));
  if (!curve || !point) return malformed('originator key');
  if (curve.getAttribute('URI') !== XML_ALGORITHMS.namedCurveP256) return notAllowed('curve');
  const originatorPoint = strictBase64(leafText(point));
  if (originatorPoint === undefined) return malformed('originator key');
  return { kind: 'ec-p256', wrappedKey, originatorPoint, kdf };
}

function cipherValueOf(cipherData: Element): Buffer {
  const values = elementChildren(cipherData);
  const bytes =
    values.length === 1 && isNamed(values[0]!, XENC_NAMESPACE, 'CipherValue')
      ? strictBase64(leafText(values[0]!))
      : undefined;
  if (bytes === undefined || bytes.length === 0)
    fail('SIMCRED_PACKAGE_MALFORMED', 'a CipherValue is malformed');
  return bytes;
}

// ——— decryption ———

async function decryptSealed(
  encryptedData: Element,
  sealed: SealedKey,
  privateKey: DevicePrivateKey,
): Promise<Buffer> {
  let kind: ReturnType<typeof keyKind>;
  try {
    kind = deviceKeyKind(privateKey);
  } catch (cause) {
    return fail('SIMCRED_PACKAGE_DECRYPT_FAILED', 'the device key cannot open this package', cause);
  }
  if (kind !== sealed.kind) {
    fail('SIMCRED_PACKAGE_DECRYPT_FAILED', 'the sealed credentials are for another kind of device key');
  }
  try {
    if (sealed.kind === 'rsa' && !isExternalDeviceKey(privateKey)) {
      const text = await new Promise<string>((resolve, reject) =>
        xmlEncryption.decrypt(
          new XMLSerializer().serializeToString(encryptedData),
          { key: privateKey },
          (error, result) =>
            error || result === undefined ? reject(error ?? new Error('no plaintext')) : resolve(result),
        ),
      );
      return Buffer.from(text, 'utf8');
    }
    if (sealed.kind !== 'ec-p256') throw new Error('an RSA package for an EC key');
    // A key in a TPM: Z from the TPM, then the same ConcatKDF and key unwrap as in software.
    const contentKey = isExternalDeviceKey(privateKey)
      ? ecdhEsUnwrapKeyWithZ(sealed.wrappedKey, await privateKey.ecdhZ(sealed.originatorPoint), sealed.kdf)
      : ecdhEsUnwrapKey(sealed.wrappedKey, sealed.originatorPoint, privateKey, sealed.kdf);
    try {
      const cipherData = elementChildren(encryptedData)[2]!;
      return aesGcmDecrypt(contentKey, cipherValueOf(cipherData));
    } finally {
      contentKey.fill(0);
    }
  } catch (cause) {
    if (cause instanceof SimcredError && cause.code.startsWith('SIMCRED_TPM_')) throw cause;
    return fail(
      'SIMCRED_PACKAGE_DECRYPT_FAILED',
      'the sealed credentials cannot be decrypted with this device key',
      cause,
    );
  }
}

function readCredentialsXml(plaintext: Buffer): { fields: PackageFields; credentials: Credentials } {
  try {
    const root = parseXmlStrict(plaintext.toString('utf8'), XML_PACKAGE_LIMITS).documentElement!;
    if (root.localName !== 'Credentials' || root.namespaceURI !== XML_PACKAGE_NAMESPACE)
      throw new Error('root');
    checkOnlyAttributes(root, []);
    const names = [...PACKAGE_FIELDS, ...CREDENTIAL_FIELDS.map(([name]) => name)];
    const children = elementChildren(root);
    const values = children.length === names.length ? readFieldElements(children, names) : undefined;
    if (values === undefined) throw new Error('fields');
    const fields = parseFieldValues(values.slice(0, PACKAGE_FIELDS.length));
    const raw = Object.fromEntries(
      CREDENTIAL_FIELDS.map(([, key], i) => [key, values[PACKAGE_FIELDS.length + i]]),
    );
    return { fields, credentials: credentialsSchema.parse(raw) };
  } finally {
    plaintext.fill(0);
  }
}

// ——— building ———

function newDocument(rootName: string): Document {
  return new DOMImplementation().createDocument(XML_PACKAGE_NAMESPACE, rootName, null);
}

function packageFieldValues(fields: PackageFields): string[] {
  return [fields.packageId, fields.dsimId, fields.deviceNonce, String(fields.iat), String(fields.exp)];
}

function appendFields(doc: Document, parent: Element, names: readonly string[], values: string[]): void {
  names.forEach((name, i) => {
    const element = doc.createElementNS(XML_PACKAGE_NAMESPACE, name);
    element.appendChild(doc.createTextNode(values[i]!));
    parent.appendChild(element);
  });
}

function credentialsXml(fields: PackageFields, credentials: Credentials): string {
  const doc = newDocument('Credentials');
  appendFields(
    doc,
    doc.documentElement!,
    [...PACKAGE_FIELDS, ...CREDENTIAL_FIELDS.map(([name]) => name)],
    [...packageFieldValues(fields), ...CREDENTIAL_FIELDS.map(([, key]) => credentials[key])],
  );
  return new XMLSerializer().serializeToString(doc);
}

/** RSA device: xml-encryption makes the whole EncryptedData (rsa-oaep-mgf1p, SHA-1; aes256-gcm). */
async function encryptForRsaDevice(
  plaintext: string,
  deviceKey: KeyObject,
  input: PublicKeyInput,
): Promise<Element> {
  const certificatePem = certificatePemOf(input);
  if (certificatePem === undefined) {
    throw new SimcredError(
      'SIMCRED_CRYPTO_KEY_UNSUPPORTED',
      "an RSA device's XML package needs the device certificate, not its bare key (it goes into the EncryptedKey's KeyInfo)",
    );
  }
  const xml = await new Promise<string>((resolve, reject) =>
    xmlEncryption.encrypt(
      plaintext,
      {
        rsa_pub: deviceKey,
        pem: certificatePem,
        encryptionAlgorithm: XML_ALGORITHMS.contentEncryption,
        keyEncryptionAlgorithm: XML_ALGORITHMS.rsaKeyTransport,
        keyEncryptionDigest: 'sha1',
      },
      (error, result) =>
        error || result === undefined ? reject(error ?? new Error('no output')) : resolve(result),
    ),
  );
  return parseXmlStrict(xml.trim(), XML_PACKAGE_LIMITS).documentElement!;
}

/**
 * EC device: the hand-written ECDH-ES path. ConcatKDF's AlgorithmID names the key wrap URI, PartyUInfo
 * is "simcred", PartyVInfo the DSIM_ID (all as XML Encryption 1.1 bit strings).
 */
function encryptForEcDevice(plaintext: string, deviceKey: KeyObject, dsimId: string): Element {
  const kdf: ConcatKdfParams = {
    algorithmId: toBitStringHex(Buffer.from(XML_ALGORITHMS.keyWrap, 'utf8')),
    partyUInfo: toBitStringHex(Buffer.from('simcred', 'utf8')),
    partyVInfo: toBitStringHex(Buffer.from(dsimId, 'utf8')),
  };
  const contentKey = randomBytes(AES256_KEY_BYTES);
  let cipherValue: Buffer;
  let wrapped: { originatorPoint: Buffer; wrappedKey: Buffer };
  try {
    cipherValue = aesGcmEncrypt(contentKey, Buffer.from(plaintext, 'utf8'));
    wrapped = ecdhEsWrapKey(contentKey, deviceKey, kdf);
  } finally {
    contentKey.fill(0);
  }
  const doc = new DOMImplementation().createDocument(XENC_NAMESPACE, 'xenc:EncryptedData', null);
  const el = (
    ns: string,
    name: string,
    attributes: Record<string, string> = {},
    ...children: (Element | string)[]
  ) => {
    const element = doc.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
    for (const child of children)
      element.appendChild(typeof child === 'string' ? doc.createTextNode(child) : child);
    return element;
  };
  const root = doc.documentElement!;
  root.setAttributeNS(XMLNS_NAMESPACE, 'xmlns:xenc', XENC_NAMESPACE);
  root.setAttribute('Type', ELEMENT_TYPE);
  root.appendChild(
    el(XENC_NAMESPACE, 'xenc:EncryptionMethod', { Algorithm: XML_ALGORITHMS.contentEncryption }),
  );
  const ds = (name: string, attributes: Record<string, string> = {}, ...children: (Element | string)[]) =>
    el(DSIG_NAMESPACE, `ds:${name}`, attributes, ...children);
  const keyInfo = ds(
    'KeyInfo',
    {},
    el(
      XENC_NAMESPACE,
      'xenc:EncryptedKey',
      {},
      el(XENC_NAMESPACE, 'xenc:EncryptionMethod', { Algorithm: XML_ALGORITHMS.keyWrap }),
      ds(
        'KeyInfo',
        {},
        el(
          XENC_NAMESPACE,
          'xenc:AgreementMethod',
          { Algorithm: XML_ALGORITHMS.ecdhKeyAgreement },
          el(
            XENC11_NAMESPACE,
            'xenc11:KeyDerivationMethod',
            { Algorithm: XML_ALGORITHMS.keyDerivation },
            el(
              XENC11_NAMESPACE,
              'xenc11:ConcatKDFParams',
              { AlgorithmID: kdf.algorithmId, PartyUInfo: kdf.partyUInfo, PartyVInfo: kdf.partyVInfo },
              ds('DigestMethod', { Algorithm: XML_ALGORITHMS.digest }),
            ),
          ),
          el(
            XENC_NAMESPACE,
            'xenc:OriginatorKeyInfo',
            {},
            ds(
              'KeyValue',
              {},
              el(
                DSIG11_NAMESPACE,
                'dsig11:ECKeyValue',
                {},
                el(DSIG11_NAMESPACE, 'dsig11:NamedCurve', { URI: XML_ALGORITHMS.namedCurveP256 }),
                el(DSIG11_NAMESPACE, 'dsig11:PublicKey', {}, wrapped.originatorPoint.toString('base64')),
              ),
            ),
          ),
        ),
      ),
      el(
        XENC_NAMESPACE,
        'xenc:CipherData',
        {},
        el(XENC_NAMESPACE, 'xenc:CipherValue', {}, wrapped.wrappedKey.toString('base64')),
      ),
    ),
  );
  root.appendChild(keyInfo);
  root.appendChild(
    el(
      XENC_NAMESPACE,
      'xenc:CipherData',
      {},
      el(XENC_NAMESPACE, 'xenc:CipherValue', {}, cipherValue.toString('base64')),
    ),
  );
  return root;
}

// ——— small helpers ———

function isNamed(element: Element, namespace: string, localName: string): boolean {
  return element.localName === localName && element.namespaceURI === namespace;
}

function checkOnlyAttributes(element: Element, allowed: string[]): void {
  for (let i = 0; i < element.attributes.length; i++) {
    const attribute = element.attributes.item(i)!;
    if (attribute.name === 'xmlns' || attribute.name.startsWith('xmlns:')) continue;
    if (!allowed.includes(attribute.name)) {
      fail('SIMCRED_PACKAGE_MALFORMED', `${element.localName} carries an unexpected attribute`);
    }
  }
}

/** The text of each element if the names match `names` in order (own namespace, leaves only). */
function readFieldElements(elements: Element[], names: readonly string[]): string[] | undefined {
  if (elements.length !== names.length) return undefined;
  const values: string[] = [];
  for (const [i, element] of elements.entries()) {
    if (!isNamed(element, XML_PACKAGE_NAMESPACE, names[i]!) || element.attributes.length > 0)
      return undefined;
    values.push(leafText(element));
  }
  return values;
}

/** Standard base64, line breaks allowed (xmlsec1 wraps at 64 columns), otherwise canonical. */
function strictBase64(text: string): Buffer | undefined {
  const compact = text.replace(/[\r\n\t ]/g, '');
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return undefined;
  const bytes = Buffer.from(compact, 'base64');
  return bytes.toString('base64') === compact ? bytes : undefined;
}

function spkiPem(key: KeyObject): string {
  return key.export({ format: 'pem', type: 'spki' }).toString();
}

function certificatePemOf(input: PublicKeyInput): string | undefined {
  if (input instanceof x509.X509Certificate) return input.toString('pem');
  if (typeof input === 'string' && input.includes('-----BEGIN CERTIFICATE-----')) return input;
  if (typeof input === 'object' && 'raw' in input && Buffer.isBuffer(input.raw)) {
    return new x509.X509Certificate(input.raw).toString('pem');
  }
  return undefined;
}
