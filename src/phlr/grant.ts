import { createHash, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { SimcredError } from '../errors/index.js';

/** JWS `typ` of the preliminary HLR's access grant (DESIGN §2 step 1). */
export const GRANT_TYPE = 'simcred-grant+jwt';
/** The only scope a grant carries: registration traffic (step 2). */
export const GRANT_SCOPE = 'registration';
/** `iss` of grants made by simcred's PHLR. */
export const GRANT_ISSUER = 'simcred-phlr';
/** Grants are signed with ES256 (the PHLR's EC P-256 key); nothing else is accepted. */
export const GRANT_ALGORITHM = 'ES256';

/** What a grant says (JWT claims, RFC 7519). */
export interface GrantClaims {
  iss: string;
  /** The PIMSI that authenticated. */
  sub: string;
  dsimId: string;
  scope: typeof GRANT_SCOPE;
  iat: number;
  exp: number;
  jti: string;
}

/** The PHLR's signing identity: its key and the certificate chain (base64 DER, leaf first) for x5c. */
export interface GrantSigner {
  privateKey: KeyObject;
  certificateChainDer: Buffer[];
}

const keyIds = new WeakMap<KeyObject, string>();

/** kid of a grant key (private or public): base64url SHA-256 of its SubjectPublicKeyInfo (memoised per key). */
export function grantKeyId(key: KeyObject): string {
  let kid = keyIds.get(key);
  if (kid === undefined) {
    const publicKey = key.type === 'private' ? createPublicKey(key) : key;
    const spki = publicKey.export({ format: 'der', type: 'spki' });
    kid = createHash('sha256').update(spki).digest('base64url');
    keyIds.set(key, kid);
  }
  return kid;
}

/**
 * PHLR side: a compact JWS (ES256) with header {alg, typ: "simcred-grant+jwt", kid, x5c} and claims
 * {iss, sub: PIMSI, dsimId, scope: "registration", iat, exp = iat + ttl, jti}.
 *
 * @example
 *   const { grant, expiresAt } = await signGrant(signer, { pimsi, dsimId, ttlSeconds: 600 });
 */
export async function signGrant(
  signer: GrantSigner,
  input: { pimsi: string; dsimId: string; ttlSeconds: number; now?: Date },
): Promise<{ grant: string; expiresAt: Date; jti: string }> {
  const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const exp = iat + input.ttlSeconds;
  const jti = randomUUID();
  const grant = await new SignJWT({ dsimId: input.dsimId, scope: GRANT_SCOPE })
    .setProtectedHeader({
      alg: GRANT_ALGORITHM,
      typ: GRANT_TYPE,
      kid: grantKeyId(signer.privateKey),
      x5c: signer.certificateChainDer.map((der) => der.toString('base64')),
    })
    .setIssuer(GRANT_ISSUER)
    .setSubject(input.pimsi)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(signer.privateKey);
  return { grant, expiresAt: new Date(exp * 1000), jti };
}

/**
 * Registration server side (step 2): the grant must verify with one of the trusted PHLR keys
 * (configured, never taken from the grant's own x5c), be of type simcred-grant+jwt, scope
 * "registration", issued by the PHLR, not expired and not issued in the future (both within
 * `clockSkewSeconds`), and name this DSIM_ID. Throws SIMCRED_GRANT_EXPIRED for an expired grant
 * and SIMCRED_GRANT_INVALID for everything else.
 *
 * @example
 *   await verifyGrant(body.grant, { keys: [phlrPublicKey], dsimId: body.dsimId, clockSkewSeconds: 30 });
 */
export async function verifyGrant(
  grant: string,
  options: { keys: KeyObject[]; dsimId: string; clockSkewSeconds: number; now?: Date },
): Promise<GrantClaims> {
  const invalid = (why: string, cause?: unknown): never => {
    throw new SimcredError('SIMCRED_GRANT_INVALID', `access grant refused: ${why}`, { cause });
  };
  const now = options.now ?? new Date();
  let payload: JWTPayload | undefined;
  let lastError: unknown;
  for (const key of options.keys) {
    try {
      ({ payload } = await jwtVerify(grant, key, {
        algorithms: [GRANT_ALGORITHM],
        typ: GRANT_TYPE,
        issuer: GRANT_ISSUER,
        requiredClaims: ['sub', 'iat', 'exp', 'jti'],
        clockTolerance: options.clockSkewSeconds,
        currentDate: now,
      }));
      break;
    } catch (err) {
      lastError = err;
      // Only a bad signature means "try the next key"; any claim failure is final.
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) break;
    }
  }
  if (!payload) {
    if (lastError instanceof joseErrors.JWTExpired) {
      throw new SimcredError('SIMCRED_GRANT_EXPIRED', 'the access grant has expired', { cause: lastError });
    }
    if (lastError instanceof joseErrors.JWSSignatureVerificationFailed) {
      return invalid('not signed by a trusted preliminary HLR', lastError);
    }
    return invalid(options.keys.length === 0 ? 'no PHLR key is configured' : 'malformed', lastError);
  }
  if (payload.scope !== GRANT_SCOPE) invalid('not a registration grant');
  if (payload.dsimId !== options.dsimId) invalid('issued to another device');
  // jose checks iat only for type; a grant from the future means a wrong clock or a forgery.
  if ((payload.iat ?? 0) > now.getTime() / 1000 + options.clockSkewSeconds) invalid('issued in the future');
  return payload as unknown as GrantClaims;
}
