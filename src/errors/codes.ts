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
  SIMCRED_CLI_USAGE: {
    status: 400,
    meaning:
      'The command line does not parse: an unknown command or option, a missing command, option or argument, or too many arguments.',
  },
  SIMCRED_FILE_NOT_FOUND: {
    status: 404,
    meaning: 'A file or folder named on the command line or in the configuration does not exist.',
  },
  SIMCRED_ADDRESS_IN_USE: {
    status: 409,
    meaning: 'A server cannot listen: another process already listens on its host and port.',
  },
  SIMCRED_ADDRESS_UNAVAILABLE: {
    status: 400,
    meaning:
      'A server cannot listen: its host does not resolve, is not an address of this machine, or the port needs privileges.',
  },

  // Credentialing flow (DESIGN §2 steps 0b–12)
  SIMCRED_REGISTRATION_UNKNOWN: { status: 404, meaning: 'No registration exists for this DSIM_ID.' },
  SIMCRED_REGISTRATION_EXPIRED: {
    status: 410,
    meaning: 'The registration has expired; the operator must register the device again.',
  },
  SIMCRED_REGISTRATION_REVOKED: { status: 410, meaning: 'The operator revoked this registration.' },
  SIMCRED_REGISTRATION_USED: {
    status: 409,
    meaning: 'The registration was already used to deliver a package; replays of steps 3–9 fail.',
  },
  SIMCRED_SESSION_NONCE_INVALID: {
    status: 401,
    meaning: "The registration-session nonce is not the one derived from this device's registration nonce.",
  },
  SIMCRED_DEVICE_NONCE_REUSED: {
    status: 409,
    meaning:
      'This device nonce already opened a session for the device: a replayed step 3 is refused and changes nothing; a device opens each session with a fresh nonce.',
  },
  SIMCRED_SESSION_IN_PROGRESS: {
    status: 409,
    meaning: 'Another session for this device is open; retry after it ends or expires.',
  },
  SIMCRED_SESSION_UNKNOWN: {
    status: 404,
    meaning: 'No open session with this id (unknown, finished or expired).',
  },
  SIMCRED_CHALLENGE_INVALID: {
    status: 401,
    meaning: 'The challenge is unknown, expired or was issued to another device.',
  },
  SIMCRED_PROOF_INVALID: {
    status: 401,
    meaning: 'The proof-of-possession signature does not verify with the device certificate.',
  },
  SIMCRED_CERT_INVALID: {
    status: 400,
    meaning: 'The certificate chain cannot be parsed (not base64 DER certificates).',
  },
  SIMCRED_CERT_UNTRUSTED: {
    status: 401,
    meaning:
      'The certificate does not chain to a trusted CA, or a certificate on the path is outside its validity period or unfit.',
  },
  SIMCRED_CERT_DSIM_MISMATCH: {
    status: 403,
    meaning: 'The DSIM_ID in the request is not the one bound in the certificate.',
  },
  SIMCRED_TICKET_INVALID: {
    status: 401,
    meaning: 'The delivery ticket is unknown, expired, used, or not for this device or server.',
  },
  SIMCRED_DEVICE_KEY_MISMATCH: {
    status: 409,
    meaning: 'This DSIM_ID already has credentials bound to another device key.',
  },
  SIMCRED_IMSI_EXHAUSTED: { status: 507, meaning: 'The configured IMSI range has no free IMSI left.' },
  SIMCRED_RECEIPT_INVALID: {
    status: 401,
    meaning: 'The device receipt does not verify or does not match the delivered package.',
  },
  SIMCRED_GROUP_UNKNOWN: { status: 404, meaning: 'No open enrollment group with this id.' },
  SIMCRED_GROUP_CA_MISMATCH: {
    status: 403,
    meaning: "The device's certificate was not issued by the enrollment group's CA.",
  },
  SIMCRED_GROUP_PATTERN_MISMATCH: {
    status: 403,
    meaning: "The device is of an enrolled CA, but its DSIM_ID is outside every such group's pattern.",
  },
  SIMCRED_GROUP_CAP_REACHED: {
    status: 403,
    meaning: 'The enrollment group has admitted as many devices as its cap allows.',
  },
  SIMCRED_AUTHORISATION_DENIED: {
    status: 403,
    meaning: "The operator's authorisation hook refused this device at step 4 (its reason follows).",
  },
  SIMCRED_AUTHORISATION_UNAVAILABLE: {
    status: 503,
    meaning:
      "The operator's authorisation hook did not answer in time or answered no valid decision; the device is refused for now (fail closed) and may retry after Retry-After.",
  },
  SIMCRED_SUBSCRIPTION_NOT_PROVISIONED: {
    status: 409,
    meaning:
      'The device has no subscription to suspend or resume yet (its credentials were not delivered); revoke or delete it instead.',
  },
  SIMCRED_REPROVISION_NOT_ALLOWED: {
    status: 403,
    meaning:
      "The device's order does not allow re-provisioning by this requester: its reprovision policy is never, or operator when the device asked (docs/protocol.md, re-provisioning).",
  },
  SIMCRED_SUBSCRIPTION_ENDED: {
    status: 410,
    meaning:
      'The subscription was deleted or revoked after delivery (its subscriber released at the HSS): it can no longer be suspended, resumed or attached.',
  },
  SIMCRED_DEVICE_TRANSFERRED: {
    status: 410,
    meaning:
      'The device moved to another operator (operator change): this operator never credentials it again.',
  },
  SIMCRED_TRANSFER_IN_PROGRESS: {
    status: 409,
    meaning:
      'The device is being transferred to another operator already (a different target was asked for).',
  },
  SIMCRED_TRANSFER_UNKNOWN: {
    status: 404,
    meaning: 'No transfer statement or transfer under way for this device (or another transfer id).',
  },
  SIMCRED_TRANSFER_CONFIRMATION_INVALID: {
    status: 401,
    meaning:
      "The transfer confirmation does not verify with the device's certificate, or names another transfer.",
  },

  // Orders and notifications (issue 14; docs/protocol.md)
  SIMCRED_ORDER_UNKNOWN: { status: 404, meaning: 'No order with this id.' },
  SIMCRED_ORDER_CANCELLED: { status: 409, meaning: 'The order is cancelled: no device can be added to it.' },
  SIMCRED_WEBHOOK_UNKNOWN: { status: 404, meaning: 'No webhook with this id (it may have been removed).' },
  SIMCRED_WEBHOOK_URL_REFUSED: {
    status: 400,
    meaning:
      'A webhook URL that is not https (http only to a loopback address, or with notify.allowHttp), or that has credentials, a fragment or no host.',
  },

  // PKI
  SIMCRED_PKI_NOT_INITIALISED: {
    status: 400,
    meaning: 'The PKI folder has no pki.json; run `simcred pki init`.',
  },
  SIMCRED_PKI_UNKNOWN_DEVICE: { status: 404, meaning: 'No device with that DSIM_ID was manufactured here.' },
  SIMCRED_PKI_UNKNOWN_CERTIFICATE: {
    status: 404,
    meaning: 'That issuing CA never issued a certificate with this serial number.',
  },
  SIMCRED_PKI_INCONSISTENT: {
    status: 500,
    meaning: 'The PKI folder is inconsistent (a certificate without its key, or not signed by its issuer).',
  },

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

  // AKA (Milenage, 3GPP TS 33.102 §6.3)
  SIMCRED_AKA_MAC_FAILURE: {
    status: 401,
    meaning: 'Device side: the MAC-A in AUTN does not verify, so the challenge was not made with this K.',
  },
  SIMCRED_AKA_SYNC_FAILURE: {
    status: 409,
    meaning:
      'Device side: the SQN in AUTN is not fresh (replayed, stale or too far ahead); the USIM answers with AUTS.',
  },
  SIMCRED_AKA_RES_MISMATCH: { status: 401, meaning: "Network side: the device's RES does not equal XRES." },
  SIMCRED_AKA_AUTS_INVALID: {
    status: 401,
    meaning: 'Network side: the MAC-S in an AUTS does not verify, so no SQN_MS can be taken from it.',
  },
  SIMCRED_AKA_STATE_INVALID: { status: 400, meaning: 'A stored USIM state (keys, SQN array) is malformed.' },

  // Flow cryptography (src/crypto/, docs/crypto.md)
  SIMCRED_PACKAGE_MALFORMED: {
    status: 400,
    meaning: 'The credential package is not a well-formed simcred JWS / JWE (shape, header, fields, size).',
  },
  SIMCRED_PACKAGE_SIGNATURE_INVALID: {
    status: 422,
    meaning: 'The operator signature on the credential package does not verify.',
  },
  SIMCRED_PACKAGE_CHAIN_INVALID: {
    status: 422,
    meaning: "The package's x5c chain does not reach a trusted operator root, or a certificate is unfit.",
  },
  SIMCRED_PACKAGE_BINDING_MISMATCH: {
    status: 422,
    meaning: "The package is bound to another DSIM_ID, device nonce or package than the device's own.",
  },
  SIMCRED_PACKAGE_EXPIRED: { status: 410, meaning: 'The credential package is past its exp time.' },
  SIMCRED_PACKAGE_DECRYPT_FAILED: {
    status: 422,
    meaning: 'The sealed credentials cannot be decrypted with this device key (other device, or tampered).',
  },
  SIMCRED_CRYPTO_ALGORITHM_NOT_ALLOWED: {
    status: 400,
    meaning: 'A signature or encryption algorithm outside the allow-list (src/crypto/algorithms.ts).',
  },
  SIMCRED_CRYPTO_KEY_UNSUPPORTED: {
    status: 400,
    meaning: 'A key or certificate is unreadable, or not EC P-256 / RSA of at least 2048 bits.',
  },
  SIMCRED_SECRET_DECRYPT_FAILED: {
    status: 500,
    meaning: 'A secret encrypted at rest (K, OPc) does not decrypt: wrong KEK, wrong record or altered data.',
  },
  SIMCRED_XML_MALFORMED: {
    status: 400,
    meaning: 'An XML document (the XML credential package, or its decrypted content) is not well-formed XML.',
  },
  SIMCRED_XML_DTD_FORBIDDEN: {
    status: 400,
    meaning:
      'An XML document carries a DOCTYPE (a DTD, entity declarations, external entities): never accepted, so no entity is ever expanded or fetched.',
  },
  SIMCRED_XML_TOO_LARGE: {
    status: 413,
    meaning: 'An XML document exceeds the size, nesting depth or node count limits (docs/crypto.md §6b).',
  },
  SIMCRED_XML_SIGNATURE_NOT_SINGLE: {
    status: 422,
    meaning:
      'The XML package holds no XML Signature or more than one, or a signature with other than one Reference.',
  },
  SIMCRED_XML_SIGNATURE_WRAPPED: {
    status: 422,
    meaning:
      "The XML Signature's Reference does not cover the document element, or the signature sits elsewhere than as its last child (signature wrapping).",
  },
  SIMCRED_PACKAGE_FORMAT_UNSUPPORTED: {
    status: 422,
    meaning:
      'The device opens none of the package formats this deployment seals (credentialing.packageFormats), or a package came in a format the device does not open.',
  },
  SIMCRED_TRANSFER_STATEMENT_INVALID: {
    status: 422,
    meaning:
      "The transfer statement is malformed, its signature does not verify, or it is not signed by the current operator's package signer.",
  },
  SIMCRED_TRANSFER_STATEMENT_EXPIRED: {
    status: 410,
    meaning: 'The transfer statement is past its exp time.',
  },
  SIMCRED_TRANSFER_BINDING_MISMATCH: {
    status: 422,
    meaning: 'The transfer statement names another DSIM_ID or another device key.',
  },
  SIMCRED_KEY_STORE_UNAVAILABLE: {
    status: 503,
    meaning:
      'The PKCS#11 token holding a key (a key-encryption key, OP or signing key) cannot be opened or failed an operation; nothing was stored half-done; retry after the Retry-After delay.',
  },

  // Network access (DESIGN §2 steps 1, 2 and 12: preliminary HLR, access grant, attach; docs/aka.md)
  SIMCRED_AKA_SUBSCRIBER_UNKNOWN: {
    status: 404,
    meaning: 'The (P)HLR has no subscriber with this PIMSI or IMSI.',
  },
  SIMCRED_AKA_NO_CHALLENGE: {
    status: 409,
    meaning:
      'No AKA challenge is pending for this subscriber (never issued, already answered, replaced or expired); ask for a new one.',
  },
  SIMCRED_SUBSCRIPTION_SUSPENDED: {
    status: 403,
    meaning: 'The operator suspended this subscription: the HSS refuses its attach until it is resumed.',
  },
  SIMCRED_GRANT_INVALID: {
    status: 401,
    meaning:
      "The preliminary HLR's access grant is missing, malformed, not signed by a trusted PHLR key, not for registration, or for another device.",
  },
  SIMCRED_GRANT_EXPIRED: {
    status: 401,
    meaning: 'The access grant is past its exp time; the device must authenticate at the PHLR again.',
  },

  // Contract portal (step 0a; docs/portal.md)
  SIMCRED_UNAUTHENTICATED: {
    status: 401,
    meaning: 'No valid portal session: sign in (the session cookie is missing, unknown or expired).',
  },
  SIMCRED_FORBIDDEN_ACCOUNT: {
    status: 403,
    meaning: 'The signed-in account is of the wrong kind for this page (an owner on the operator console).',
  },
  SIMCRED_CSRF_INVALID: {
    status: 403,
    meaning: "A state-changing request without the session's CSRF token in the x-csrf-token header.",
  },
  SIMCRED_LOGIN_FAILED: { status: 401, meaning: 'The e-mail address or the password is wrong.' },
  SIMCRED_RATE_LIMITED: {
    status: 429,
    meaning: 'Too many attempts (sign-in, sign-up); retry after the Retry-After delay.',
  },
  SIMCRED_ACCOUNT_EXISTS: { status: 409, meaning: 'An account with this e-mail address already exists.' },
  SIMCRED_PLAN_UNKNOWN: { status: 400, meaning: "The plan is not in the operator's catalogue." },
  SIMCRED_CONTRACT_UNKNOWN: {
    status: 404,
    meaning: "No such contract among those this account may see (another owner's contract is unknown too).",
  },
  SIMCRED_DEVICE_UNKNOWN: {
    status: 404,
    meaning: 'No such device in this contract (or among those this account may see).',
  },
  SIMCRED_PAYMENT_DECLINED: {
    status: 402,
    meaning: "The contract's payment was declined; no device can be added until a new payment is authorised.",
  },
  SIMCRED_PLAN_LIMIT: { status: 409, meaning: "The contract's plan allows no more devices." },
  SIMCRED_UPLOAD_INVALID: {
    status: 400,
    meaning:
      'A device file that cannot be read at all: not UTF-8, no dsim_id column in its CSV header, or an unsupported format (bad rows in a readable file are reported one by one instead).',
  },
  SIMCRED_DEVICE_DUPLICATE: {
    status: 409,
    meaning:
      'A device row refused because its DSIM_ID is already on an earlier row of the same file or belongs to another contract (a device belongs to one contract).',
  },

  // OMA DM delivery (the provisioning role's SyncML DM 1.2 embodiment; docs/omadm.md)
  SIMCRED_DM_MALFORMED: {
    status: 400,
    meaning:
      'A DM message is not a SyncML DM 1.2 message (not XML or SyncML, another version, an element missing or doubled), or delivers no package (docs/omadm.md).',
  },
  SIMCRED_DM_MESSAGE_TOO_LARGE: {
    status: 413,
    meaning:
      "A DM message exceeds the receiver's MaxMsgSize (16 KiB at the provisioning server) or the XML depth and node limits.",
  },
  SIMCRED_DM_COMMAND_UNSUPPORTED: {
    status: 406,
    meaning:
      'A DM command this side does not carry out (Get, Exec, … or unknown): SyncML Status 406 for it, this code in the Status item; the session goes on.',
  },
  SIMCRED_DM_CREDENTIALS_INVALID: {
    status: 401,
    meaning:
      'A DM Package 1 without credentials (Status 407 + Chal) or with unusable ones (Status 401 + Chal): not syncml:auth-basic of DSIM_ID:ticket for its DevId.',
  },
  SIMCRED_DM_SESSION_UNKNOWN: {
    status: 404,
    meaning:
      'A DM message for a session the provisioning server does not hold (unknown, closed or expired); the device starts a new one.',
  },
  SIMCRED_DM_NOTIFICATION_INVALID: {
    status: 401,
    meaning:
      'A DM Package 0 notification the device refuses: its digest does not verify, it is truncated, not version 1.2, or from another DM server.',
  },
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
