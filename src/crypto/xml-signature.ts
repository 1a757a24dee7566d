/**
 * The XML Signature side of the XML package: xml-crypto does the work (references, transforms,
 * canonicalisation, SignedInfo); this file adds the one algorithm it lacks, ECDSA-SHA256 (RFC 6931
 * §2.3.6; the value is r ‖ s, 64 bytes, XML Signature 1.1 §6.4.3), and configures SignedXml so that it
 * knows only the allow-listed algorithms and takes its key from the verified chain, never from KeyInfo.
 */
import { verify, type BinaryLike, type KeyLike, type KeyObject } from 'node:crypto';
import { SignedXml } from 'xml-crypto';
import type { SignatureAlgorithm } from 'xml-crypto';
import { XML_ALGORITHMS, XML_SIGNATURE_ALGORITHM, type KeyKind } from './algorithms.js';
import { asSigningKey, type SigningKey } from '../keys/signing-key.js';

type Callback<T> = (error: Error | null, result?: T) => void;

/** xml-crypto's SignatureAlgorithm contract: synchronous, or answering through a trailing callback. */
function withOptionalCallback<A extends unknown[], T>(fn: (...args: A) => T) {
  return (...args: [...A, Callback<T>?]): T | undefined => {
    const last = args[args.length - 1];
    if (typeof last !== 'function') return fn(...(args as unknown as A));
    const callback = last as Callback<T>;
    let result: T;
    try {
      result = fn(...(args.slice(0, -1) as unknown as A));
    } catch (error) {
      callback(error as Error);
      return undefined;
    }
    callback(null, result);
    return undefined;
  };
}

/**
 * ECDSA P-256 / SHA-256 for xml-crypto, signature value as IEEE P1363 r ‖ s. The "private key" xml-crypto
 * hands to getSignature is the operator's SigningKey (a file's or a PKCS#11 token's), which signs.
 */
class EcdsaSha256 {
  getSignature = withOptionalCallback((signedInfo: BinaryLike, signer: KeyLike) =>
    (signer as unknown as SigningKey)
      .sign(Buffer.from(signedInfo as string), 'ieee-p1363')
      .toString('base64'),
  );
  verifySignature = withOptionalCallback((material: string, key: KeyLike, signatureValue: string) =>
    verify(
      'sha256',
      Buffer.from(material, 'utf8'),
      { key: key as KeyObject, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signatureValue, 'base64'),
    ),
  );
  getAlgorithmName = () => XML_SIGNATURE_ALGORITHM['ec-p256'];
}

/**
 * RSASSA-PSS / SHA-256 (MGF1-SHA-256, 32-byte salt: xml-crypto's own sha256-rsa-MGF1 parameters) signed
 * by the SigningKey; verification stays with xml-crypto's built-in class.
 */
class RsaPssSha256Signer {
  getSignature = withOptionalCallback((signedInfo: BinaryLike, signer: KeyLike) =>
    (signer as unknown as SigningKey)
      .sign(Buffer.from(signedInfo as string), 'der', { pss: true })
      .toString('base64'),
  );
  verifySignature = () => false;
  getAlgorithmName = () => XML_SIGNATURE_ALGORITHM.rsa;
}

/**
 * A SignedXml that knows exactly the package's algorithms: exclusive c14n and the enveloped-signature
 * transform, SHA-256 digests, and the one signature algorithm of `kind` (ECDSA-SHA256, or RSASSA-PSS
 * SHA-256 for an RSA operator key, xml-crypto's own). KeyInfo is never read for a key.
 */
function restrictedSignedXml(kind: KeyKind, keys: { signer?: SigningKey; publicKeyPem?: string }): SignedXml {
  const signed = new SignedXml({
    // xml-crypto only hands this on to the signature algorithm's getSignature (ours, above).
    ...(keys.signer ? { privateKey: keys.signer as unknown as KeyObject } : {}),
    ...(keys.publicKeyPem ? { publicCert: keys.publicKeyPem } : {}),
    signatureAlgorithm: XML_SIGNATURE_ALGORITHM[kind],
    canonicalizationAlgorithm: XML_ALGORITHMS.canonicalization,
    getCertFromKeyInfo: () => null,
  });
  const builtIn = signed.SignatureAlgorithms;
  signed.SignatureAlgorithms =
    kind === 'ec-p256'
      ? { [XML_SIGNATURE_ALGORITHM['ec-p256']]: EcdsaSha256 as unknown as new () => SignatureAlgorithm }
      : {
          [XML_SIGNATURE_ALGORITHM.rsa]: keys.signer
            ? (RsaPssSha256Signer as unknown as new () => SignatureAlgorithm)
            : builtIn[XML_SIGNATURE_ALGORITHM.rsa]!,
        };
  signed.HashAlgorithms = { [XML_ALGORITHMS.digest]: signed.HashAlgorithms[XML_ALGORITHMS.digest]! };
  signed.CanonicalizationAlgorithms = {
    [XML_ALGORITHMS.canonicalization]: signed.CanonicalizationAlgorithms[XML_ALGORITHMS.canonicalization]!,
    [XML_ALGORITHMS.envelopedSignature]:
      signed.CanonicalizationAlgorithms[XML_ALGORITHMS.envelopedSignature]!,
  };
  return signed;
}

/**
 * Appends an enveloped signature to the document element of `xml`: one Reference, URI="", transforms
 * enveloped-signature then exclusive c14n, SHA-256; KeyInfo holds one X509Data with the chain's
 * certificates, signer first. Returns the signed document.
 *
 * @example
 *   signEnveloped(xml, { kind: 'ec-p256', signer, chainBase64: [signerDer64, caDer64] });
 */
export function signEnveloped(
  xml: string,
  options: { kind: KeyKind; chainBase64: string[] } & ({ signer: SigningKey } | { privateKey: KeyObject }),
): string {
  const signer = 'signer' in options ? options.signer : asSigningKey(options.privateKey);
  const signed = restrictedSignedXml(options.kind, { signer });
  signed.getKeyInfoContent = ({ prefix } = {}) => {
    const p = prefix ? `${prefix}:` : '';
    const certs = options.chainBase64.map((c) => `<${p}X509Certificate>${c}</${p}X509Certificate>`).join('');
    return `<${p}X509Data>${certs}</${p}X509Data>`;
  };
  signed.addReference({
    xpath: '/*',
    transforms: [XML_ALGORITHMS.envelopedSignature, XML_ALGORITHMS.canonicalization],
    digestAlgorithm: XML_ALGORITHMS.digest,
    isEmptyUri: true,
  });
  signed.computeSignature(xml, { prefix: 'ds', location: { reference: '/*', action: 'append' } });
  return signed.getSignedXml();
}

/**
 * Checks the one enveloped signature of `xml` with `publicKeyPem` (the verified signer's key) and
 * returns the canonical XML its single reference covers — the only text a caller may read afterwards
 * (xml-crypto's getSignedReferences, the defence against signature wrapping). Throws on any failure.
 *
 * @example
 *   const [signedXml] = verifyEnveloped(text, signatureElement, { kind: 'ec-p256', publicKeyPem });
 */
export function verifyEnveloped(
  xml: string,
  signatureElement: unknown,
  options: { kind: KeyKind; publicKeyPem: string },
): string {
  const signed = restrictedSignedXml(options.kind, { publicKeyPem: options.publicKeyPem });
  signed.loadSignature(signatureElement as Parameters<SignedXml['loadSignature']>[0]);
  if (signed.checkSignature(xml) !== true) throw new Error('the signature does not verify');
  const references = signed.getSignedReferences();
  if (references.length !== 1) throw new Error('not exactly one signed reference');
  return references[0]!;
}
