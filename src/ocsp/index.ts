export {
  checkCertificateStatus,
  requireGood,
  buildOcspRequest,
  certIdFor,
  aiaOcspUrls,
  OcspResponderMap,
  type CheckOptions,
  type CertificateInput,
  type BuiltRequest,
  type OcspResult,
  type OcspStatus,
} from './client.js';
export { verifyOcspResponse, type VerifyOptions } from './verify.js';
export {
  startOcspResponder,
  decodeGetPath,
  DEFAULT_OCSP_PORT,
  OCSP_REQUEST_TYPE,
  OCSP_RESPONSE_TYPE,
  type OcspResponder,
  type OcspResponderOptions,
  type StatusSource,
} from './responder/server.js';
export type { IssuerSource } from './responder/issuers.js';
export { runOcspBench, formatBenchTable, type BenchResult } from './bench.js';
