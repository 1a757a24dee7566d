import { z } from 'zod';

/** Field schemas shared by every interface, so a DSIM_ID or a nonce is checked the same way everywhere. */

/** DSIM_ID as manufactured: "DSIM" and 16 upper-case hex digits. */
export const dsimId = z
  .string()
  .regex(/^DSIM[0-9A-F]{16}$/, 'must be DSIM followed by 16 upper-case hex digits')
  .describe('Device identity (DSIM_ID)');

/** base64url without padding, of between min and max bytes. */
export function base64url(minBytes: number, maxBytes: number, description: string) {
  const minChars = Math.ceil((minBytes * 4) / 3);
  const maxChars = Math.ceil((maxBytes * 4) / 3);
  return z
    .string()
    .min(minChars)
    .max(maxChars)
    .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url without padding')
    .describe(description);
}

/** 32 random bytes, base64url. */
export const nonce32 = (description: string) => base64url(32, 32, description).length(43);

/** A DER certificate in standard base64 (as in x5c, RFC 7515 §4.1.6). */
export const certificateDer = z
  .string()
  .min(100)
  .max(8192)
  .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64 DER')
  .describe('X.509 certificate, base64 DER');

/** Leaf first, then intermediates (the trust anchor is not sent). */
export const certificateChain = z
  .array(certificateDer)
  .min(1)
  .max(4)
  .describe('certificate chain, leaf first');

export const imsi = z
  .string()
  .regex(/^\d{15}$/, 'must be 15 digits')
  .describe('IMSI');

export const httpsUrl = z
  .string()
  .max(512)
  .regex(/^https?:\/\/[^\s]+$/, 'must be an http(s) URL')
  .describe('base URL of a server');

export const timestamp = z.iso.datetime().describe('RFC 3339 time (UTC)');

/** A compact JWS (three base64url parts). */
export const compactJws = z
  .string()
  .max(32768)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'must be a compact JWS');

/** The credential package formats (src/crypto/package-format.ts); the first is the default. */
export const packageFormat = z.enum(['jose', 'xml']).describe('credential package format');

/** A credential package as carried: a compact JWS, or an XML CredentialPackage document (docs/crypto.md §6, §6b). */
export const credentialPackage = z
  .union([
    compactJws,
    z
      .string()
      .max(65536)
      .regex(/^<[\s\S]*>$/, 'must be an XML document')
      .describe('XML credential package'),
  ])
  .describe('credential package (JOSE or XML)');

export const signature = base64url(32, 512, 'signature, base64url');

/** Device signature algorithms (allow-listed in src/crypto/algorithms.ts). */
export const signatureAlg = z.enum(['ES256', 'PS256', 'RS256']).describe('signature algorithm');
