/**
 * @peculiar/x509, loaded after the Reflect metadata polyfill its dependency tsyringe needs at import
 * time. Every simcred module imports X.509 through here, never from '@peculiar/x509' directly.
 *
 * @example
 *   import * as x509 from '../crypto/x509.js';
 *   const cert = new x509.X509Certificate(pem);
 */
import 'reflect-metadata';
export * from '@peculiar/x509';
