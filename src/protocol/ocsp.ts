import { z } from 'zod';
import { PUBLIC, defineRoute } from './route.js';

/**
 * OCSP responder (RFC 6960 over the RFC 5019 HTTP profile): binary DER bodies, not JSON. Every OCSP
 * outcome, refusals included (malformedRequest, unauthorized, tryLater, internalError), is an
 * OCSPResponse with HTTP 200; only a body the HTTP layer cannot take is a SIMCRED_ error.
 */

export const OCSP_REQUEST_TYPE = 'application/ocsp-request';
export const OCSP_RESPONSE_TYPE = 'application/ocsp-response';

const ocspMedia = { request: OCSP_REQUEST_TYPE, response: OCSP_RESPONSE_TYPE };
const der = z.instanceof(Uint8Array).describe('DER');

export const ocspPost = defineRoute({
  id: 'ocsp.post',
  role: 'ocsp',
  steps: '4, 11',
  method: 'POST',
  path: '/',
  caller: PUBLIC,
  summary:
    'An OCSPRequest (RFC 6960 §4.1.1, DER, application/ocsp-request) in the body; a signed OCSPResponse (application/ocsp-response) comes back with HTTP 200 whatever its status: good, revoked or unknown per certificate, or an OCSP error status (malformedRequest, unauthorized, tryLater, internalError). A request with a nonce gets a fresh response; one without may get a cached one. POST to any path is answered the same.',
  bodyFormat: 'binary',
  media: ocspMedia,
  response: der,
  // A store outage is answered inside the OCSPResponse (tryLater), never as an HTTP 503.
  readsDatabase: false,
  errors: [],
});

export const ocspGet = defineRoute({
  id: 'ocsp.get',
  role: 'ocsp',
  steps: '4, 11',
  method: 'GET',
  path: '/:request',
  caller: PUBLIC,
  summary:
    'RFC 5019 §5 / RFC 6960 appendix A.1: GET /{percent-encoded base64 of the DER OCSPRequest}, answered as POST is, with HTTP caching headers for nonce-less requests. A path that is not base64 of a DER SEQUENCE is answered with an OCSP malformedRequest. Every DER OCSPRequest starts with the SEQUENCE byte 0x30, so its base64 starts with "M"; no request can be `/health` or `/openapi.json` ("h" and "o" are not "M", and "." is outside both base64 alphabets), which is why those two paths are free for the responder\'s own use.',
  bodyFormat: 'binary',
  media: { response: OCSP_RESPONSE_TYPE },
  params: z
    .object({
      request: z
        .string()
        .regex(/^M[A-Za-z0-9+/_-]*={0,2}$/)
        .describe(
          'the DER OCSPRequest in base64 (or base64url), percent-encoded: "/" as %2F, "+" as %2B, "=" as %3D',
        ),
    })
    .strict(),
  response: der,
  readsDatabase: false,
  errors: [],
});

export const ocspRoutes = [ocspPost, ocspGet];
