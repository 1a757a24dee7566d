import { AsnConvert } from '@peculiar/asn1-schema';
import {
  BasicConstraints,
  KeyUsage,
  SubjectAlternativeName,
  id_ce_basicConstraints,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  type Certificate,
} from '@peculiar/asn1-x509';
import type * as x509 from './x509.js';

const SERIAL_NUMBER_OID = '2.5.4.5';

/** What path validation and the DSIM_ID binding read from a certificate's extensions and subject. */
export interface CertificateFacts {
  /** OIDs of the extensions marked critical. */
  criticalExtensions: string[];
  /** basicConstraints, if present. */
  basicConstraints: { ca: boolean; pathLength: number | undefined } | undefined;
  /** keyUsage bits (x509.KeyUsageFlags), if the extension is present. */
  keyUsage: number | undefined;
  /** Every URI in subjectAltName. */
  sanUris: string[];
  /** Every subject serialNumber attribute (OID 2.5.4.5). */
  subjectSerialNumbers: string[];
}

/*
 * @peculiar/x509 decodes a certificate once (asn1-schema) but turns every extension into an object by
 * re-encoding and re-decoding it the first time any one is asked for, and rebuilds names the same
 * way: for a device certificate, new in every request, that is twice the cost of the decode itself.
 * The few facts the flow needs are read here straight from the decoded structure the certificate
 * already holds, each extension value decoded once with its asn1-x509 type, and kept per object.
 */
const factsByCertificate = new WeakMap<x509.X509Certificate, CertificateFacts>();

/**
 * The facts of a parsed certificate (memoised per object). Throws whatever asn1-schema throws on a
 * malformed extension value.
 *
 * @example
 *   const { keyUsage, basicConstraints } = certificateFacts(cert);
 */
export function certificateFacts(certificate: x509.X509Certificate): CertificateFacts {
  let facts = factsByCertificate.get(certificate);
  if (facts === undefined) {
    facts = readFacts(decoded(certificate));
    factsByCertificate.set(certificate, facts);
  }
  return facts;
}

/** The asn1-schema structure @peculiar/x509 decoded the certificate into (AsnData#asn, protected in its types). */
function decoded(certificate: x509.X509Certificate): Certificate {
  return (certificate as unknown as { asn: Certificate }).asn;
}

function readFacts(asn: Certificate): CertificateFacts {
  const facts: CertificateFacts = {
    criticalExtensions: [],
    basicConstraints: undefined,
    keyUsage: undefined,
    sanUris: [],
    subjectSerialNumbers: [],
  };
  for (const extension of asn.tbsCertificate.extensions ?? []) {
    if (extension.critical) facts.criticalExtensions.push(extension.extnID);
    const value = extension.extnValue.buffer;
    switch (extension.extnID) {
      case id_ce_basicConstraints: {
        const bc = AsnConvert.parse(value, BasicConstraints);
        facts.basicConstraints = { ca: bc.cA, pathLength: bc.pathLenConstraint };
        break;
      }
      case id_ce_keyUsage:
        facts.keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
        break;
      case id_ce_subjectAltName:
        for (const name of AsnConvert.parse(value, SubjectAlternativeName)) {
          if (name.uniformResourceIdentifier !== undefined)
            facts.sanUris.push(name.uniformResourceIdentifier);
        }
        break;
    }
  }
  for (const rdn of asn.tbsCertificate.subject) {
    for (const attribute of rdn) {
      if (attribute.type === SERIAL_NUMBER_OID) facts.subjectSerialNumbers.push(attribute.value.toString());
    }
  }
  return facts;
}
