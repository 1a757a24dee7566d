import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { KeyHash, ResponderID } from '@peculiar/asn1-ocsp';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { derKey } from '../../crypto/bounded-cache.js';
import { SimcredError } from '../../errors/index.js';
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
    key: KeyObject;
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
  signerKeyPem: string;
}

export function loadIssuersFromPki(pkiDir: string): IssuerSource[] {
  let manifest: PkiManifest;
  try {
    manifest = JSON.parse(readFileSync(join(pkiDir, PKI_MANIFEST_FILE), 'utf8')) as PkiManifest;
  } catch (err) {
    throw new SimcredError('SIMCRED_PKI_NOT_INITIALISED', `no readable ${PKI_MANIFEST_FILE} in ${pkiDir}`, {
      cause: err,
    });
  }
  const read = (p: string) => readFileSync(join(pkiDir, p), 'utf8');
  const pairs: Record<
    IssuerName,
    { ca: { cert: string; key: string }; ocsp?: { cert: string; key: string } }
  > = {
    'device-ca': { ca: manifest.manufacturer.deviceCa, ocsp: manifest.manufacturer.deviceCaOcsp },
    'operator-ca': { ca: manifest.operator.operatorCa, ocsp: manifest.operator.operatorCaOcsp },
  };
  return ISSUERS.map((name) => {
    const { ca, ocsp } = pairs[name];
    return ocsp
      ? { name, certPem: read(ca.cert), signerCertPem: read(ocsp.cert), signerKeyPem: read(ocsp.key) }
      : { name, certPem: read(ca.cert), signerKeyPem: read(ca.key) };
  });
}

export function prepareIssuer(source: IssuerSource): ServedIssuer {
  const cert = certificateInfo(certificateDer(source.certPem));
  const signerCert = source.signerCertPem ? certificateInfo(certificateDer(source.signerCertPem)) : cert;
  const key = createPrivateKey(source.signerKeyPem);
  if (!new X509Certificate(signerCert.der).checkPrivateKey(key)) {
    throw new SimcredError(
      'SIMCRED_CONFIG_INVALID',
      `OCSP signing key of ${source.name} does not match its certificate`,
    );
  }
  const alg = signatureAlgorithmFor(key);
  const responderId = new ResponderID({
    byKey: new KeyHash(toArrayBuffer(digest('sha1', signerCert.publicKeyBits))),
  });
  return {
    name: source.name,
    cert,
    signer: {
      key,
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
