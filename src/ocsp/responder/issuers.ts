import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { KeyHash, ResponderID } from '@peculiar/asn1-ocsp';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { derKey } from '../../crypto/bounded-cache.js';
import { SimcredError } from '../../errors/index.js';
import { isPkcs11Uri } from '../../keys/pkcs11-uri.js';
import { checkKeyMatchesCertificate, tokenSigningKey, type SigningKey } from '../../keys/signing-key.js';
import { ISSUERS, PKI_MANIFEST_FILE, type IssuerName, type PkiManifest } from '../../pki/layout.js';
import {
  HASH_OIDS,
  certificateDer,
  certificateInfo,
  derConstructed,
  derOf,
  digest,
  signatureAlgorithmFor,
  toArrayBuffer,
  type CertificateInfo,
} from '../asn1.js';

/** Everything needed to sign for one issuing CA, decoded once at start-up. */
export interface ServedIssuer {
  name: IssuerName;
  cert: CertificateInfo;
  signer: {
    /** A file's key, signed with by node:crypto directly (the fast path); or else … */
    key?: KeyObject;
    /** … a key in a PKCS#11 token, which signs (SIMCRED_KEY_STORE_UNAVAILABLE when it does not). */
    tokenKey?: SigningKey;
    cert: CertificateInfo;
    /** node:crypto digest name (null for Ed25519). */
    digest: string | null;
    signatureAlgorithmDer: Buffer;
    /** ResponderID byKey: SHA-1 of the signer's public key (RFC 6960 §4.2.2.3). */
    responderIdDer: Buffer;
    responderId: ResponderID;
    /** Certificates sent in every response: the delegated signer (none when the CA signs itself). */
    certsDer: ArrayBuffer[];
    /** BasicOCSPResponse.certs as encoded once: `[0] EXPLICIT SEQUENCE OF Certificate` (none without certs). */
    certsFieldDer?: Buffer;
  };
}

/** One issuer given directly (tests, embedding) rather than through a PKI folder. */
export interface IssuerSource {
  name: IssuerName;
  certPem: string;
  /** Delegated OCSP signer; without it the CA key itself signs. */
  signerCertPem?: string;
  /** The signer's key: a PKCS#8 PEM, or a SigningKey (a key in a PKCS#11 token). */
  signerKeyPem?: string;
  signerKey?: SigningKey;
}

/**
 * The issuers of a PKI folder. A signer key named by a pkcs11: URI (in pki.json, or in `keys`, which
 * config's keys.ocspSigners fills) is opened in its token; any other is a PEM file of the folder.
 *
 * @example
 *   const sources = loadIssuersFromPki('/data/pki', { 'device-ca': 'pkcs11:token=hsm;object=simcred-device-ca-ocsp' });
 */
export function loadIssuersFromPki(
  pkiDir: string,
  keys: Partial<Record<IssuerName, string>> = {},
): IssuerSource[] {
  let manifest: PkiManifest;
  try {
    manifest = JSON.parse(readFileSync(join(pkiDir, PKI_MANIFEST_FILE), 'utf8')) as PkiManifest;
  } catch (err) {
    throw new SimcredError('SIMCRED_PKI_NOT_INITIALISED', `no readable ${PKI_MANIFEST_FILE} in ${pkiDir}`, {
      cause: err,
    });
  }
  const read = (p: string) => readFileSync(isAbsolute(p) ? p : join(pkiDir, p), 'utf8');
  const pairs: Record<
    IssuerName,
    { ca: { cert: string; key: string }; ocsp?: { cert: string; key: string } }
  > = {
    'device-ca': { ca: manifest.manufacturer.deviceCa, ocsp: manifest.manufacturer.deviceCaOcsp },
    'operator-ca': { ca: manifest.operator.operatorCa, ocsp: manifest.operator.operatorCaOcsp },
  };
  const key = (reference: string) =>
    isPkcs11Uri(reference) ? { signerKey: tokenSigningKey(reference) } : { signerKeyPem: read(reference) };
  return ISSUERS.map((name) => {
    const { ca, ocsp } = pairs[name];
    const reference = keys[name] ?? (ocsp ?? ca).key;
    return ocsp
      ? { name, certPem: read(ca.cert), signerCertPem: read(ocsp.cert), ...key(reference) }
      : { name, certPem: read(ca.cert), ...key(reference) };
  });
}

export function prepareIssuer(source: IssuerSource): ServedIssuer {
  const cert = certificateInfo(certificateDer(source.certPem));
  const signerCert = source.signerCertPem ? certificateInfo(certificateDer(source.signerCertPem)) : cert;
  let key: KeyObject | undefined;
  let alg: ReturnType<typeof signatureAlgorithmFor>;
  if (source.signerKey) {
    checkKeyMatchesCertificate(
      source.signerKey,
      new X509Certificate(signerCert.der).publicKey,
      `the OCSP signer certificate of ${source.name}`,
    );
    alg = signatureAlgorithmFor(source.signerKey.publicKey);
  } else {
    if (source.signerKeyPem === undefined) {
      throw new SimcredError('SIMCRED_CONFIG_INVALID', `no OCSP signing key for ${source.name}`);
    }
    key = createPrivateKey(source.signerKeyPem);
    if (!new X509Certificate(signerCert.der).checkPrivateKey(key)) {
      throw new SimcredError(
        'SIMCRED_CONFIG_INVALID',
        `OCSP signing key of ${source.name} does not match its certificate`,
      );
    }
    alg = signatureAlgorithmFor(key);
  }
  const responderId = new ResponderID({
    byKey: new KeyHash(toArrayBuffer(digest('sha1', signerCert.publicKeyBits))),
  });
  return {
    name: source.name,
    cert,
    signer: {
      ...(key ? { key } : { tokenKey: source.signerKey! }),
      cert: signerCert,
      digest: alg.digest,
      signatureAlgorithmDer: Buffer.from(alg.der),
      responderIdDer: Buffer.from(AsnConvert.serialize(responderId)),
      responderId,
      certsDer: source.signerCertPem ? [toArrayBuffer(signerCert.der)] : [],
      ...(source.signerCertPem
        ? {
            certsFieldDer: derConstructed('context', 0, [derConstructed('universal', 16, [signerCert.der])]),
          }
        : {}),
    },
  };
}

/** A served issuer as a CertID names it, with the CertID fields this responder answers with. */
export interface IndexedIssuer {
  issuer: ServedIssuer;
  /** DER of CertID's hashAlgorithm, issuerNameHash and issuerKeyHash (the CertID without its serial). */
  prefixDer: Buffer;
}

/**
 * Index of served issuers by CertID (hash algorithm, issuerNameHash, issuerKeyHash).
 *
 * `byEncoding` answers the usual request in one lookup: the exact DER of those three CertID fields as
 * a client encodes them for a served issuer (hashAlgorithm with NULL parameters, as OpenSSL and this
 * project's client send, or with none), kept with those same bytes to echo in the response. Any other
 * encoding goes through `find`, by the decoded values, as before.
 */
export class IssuerIndex {
  private readonly byHashes = new Map<string, IndexedIssuer>();
  private readonly byEncoding = new Map<string, IndexedIssuer>();

  constructor(readonly issuers: ServedIssuer[]) {
    for (const issuer of issuers) {
      for (const [oid, alg] of Object.entries(HASH_OIDS)) {
        const nameHash = digest(alg, issuer.cert.subjectDer);
        const keyHash = digest(alg, issuer.cert.publicKeyBits);
        const hashes = [nameHash, keyHash].map((h) => derOf(new OctetString(toArrayBuffer(h))));
        for (const withNull of [true, false]) {
          const algorithm = new AlgorithmIdentifier({ algorithm: oid });
          if (withNull) algorithm.parameters = null;
          const prefixDer = Buffer.concat([derOf(algorithm), ...hashes]);
          const entry = { issuer, prefixDer };
          this.byEncoding.set(derKey(prefixDer), entry);
          if (withNull) this.byHashes.set(IssuerIndex.key(oid, nameHash, keyHash), entry);
        }
      }
    }
  }

  static key(hashOid: string, nameHash: Uint8Array, keyHash: Uint8Array): string {
    return `${hashOid}|${Buffer.from(nameHash).toString('hex')}|${Buffer.from(keyHash).toString('hex')}`;
  }

  /** By the exact DER of hashAlgorithm ‖ issuerNameHash ‖ issuerKeyHash (derKey of those bytes). */
  byDer(key: string): IndexedIssuer | undefined {
    return this.byEncoding.get(key);
  }

  /** By the decoded values (the response then carries hashAlgorithm with NULL parameters). */
  find(hashOid: string, nameHash: Uint8Array, keyHash: Uint8Array): IndexedIssuer | undefined {
    return this.byHashes.get(IssuerIndex.key(hashOid, nameHash, keyHash));
  }
}
