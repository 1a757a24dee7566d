/**
 * Every error simcred reports, declared once (as fastify's lib/errors.js and jose's error codes do).
 * A code is never reused once published; docs/errors.md lists each one and a test keeps them in step.
 *
 * @example
 *   throw new SimcredError('SIMCRED_BAD_REQUEST', 'field "count" must be a positive integer');
 */
export const ERROR_CODES = {
  // Generic input and transport errors
  SIMCRED_BAD_REQUEST: { status: 400, meaning: 'The request is malformed or fails schema validation.' },
  SIMCRED_BODY_TOO_LARGE: { status: 413, meaning: 'The request body exceeds the configured limit.' },
  SIMCRED_UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'The request content type is not accepted here.' },
  SIMCRED_NOT_FOUND: { status: 404, meaning: 'No such resource.' },
  SIMCRED_METHOD_NOT_ALLOWED: { status: 405, meaning: 'The method is not allowed on this resource.' },
  SIMCRED_UNAUTHENTICATED_PEER: {
    status: 401,
    meaning: 'A server-to-server call came without a valid client certificate.',
  },
  SIMCRED_FORBIDDEN_PEER: { status: 403, meaning: 'The calling peer is authenticated but not allowed here.' },
  SIMCRED_DEPENDENCY_UNAVAILABLE: {
    status: 503,
    meaning: 'A dependency (OCSP, HSS, provisioning, database) is down; retry after the Retry-After delay.',
  },
  SIMCRED_INTERNAL: { status: 500, meaning: 'An unexpected error; details are in the server log only.' },

  // Command line and configuration
  SIMCRED_CONFIG_INVALID: { status: 400, meaning: 'The configuration file or an override is invalid.' },
  SIMCRED_CLI_ARGUMENT: { status: 400, meaning: 'A command-line argument is invalid.' },
  SIMCRED_IO: { status: 500, meaning: 'A file or folder could not be read or written.' },

  // PKI
  SIMCRED_PKI_NOT_INITIALISED: {
    status: 400,
    meaning: 'The PKI folder has no pki.json; run `simcred pki init`.',
  },
  SIMCRED_PKI_UNKNOWN_DEVICE: { status: 404, meaning: 'No device with that DSIM_ID was manufactured here.' },

  // OCSP client (strict): each way a response can fail to prove "good"
  SIMCRED_OCSP_UNREACHABLE: { status: 503, meaning: 'The OCSP responder could not be reached.' },
  SIMCRED_OCSP_HTTP_ERROR: { status: 502, meaning: 'The OCSP responder answered with an HTTP error.' },
  SIMCRED_OCSP_MALFORMED_RESPONSE: {
    status: 502,
    meaning: 'The OCSP response is not valid DER or not BasicOCSP.',
  },
  SIMCRED_OCSP_RESPONDER_ERROR: {
    status: 502,
    meaning:
      'The responder returned an error status (malformedRequest, internalError, tryLater, unauthorized …).',
  },
  SIMCRED_OCSP_BAD_SIGNATURE: { status: 502, meaning: 'The OCSP response signature does not verify.' },
  SIMCRED_OCSP_UNAUTHORIZED_SIGNER: {
    status: 502,
    meaning: 'The response signer is neither the issuer nor a delegated responder it authorised.',
  },
  SIMCRED_OCSP_NONCE_MISMATCH: { status: 502, meaning: 'The response does not echo the request nonce.' },
  SIMCRED_OCSP_STALE: { status: 502, meaning: 'thisUpdate is in the future or nextUpdate has passed.' },
  SIMCRED_OCSP_CERTID_MISMATCH: {
    status: 502,
    meaning: 'The response is not about the certificate asked for.',
  },
  SIMCRED_OCSP_REVOKED: { status: 403, meaning: 'The certificate is revoked.' },
  SIMCRED_OCSP_UNKNOWN: { status: 403, meaning: 'The responder does not know the certificate.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class SimcredError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (503s). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options: { retryAfter?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SimcredError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.retryAfter = options.retryAfter;
  }
}

export function isSimcredError(err: unknown): err is SimcredError {
  return err instanceof SimcredError;
}
