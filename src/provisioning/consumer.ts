import type { PeerClient } from '../http/index.js';
import { fetchPackage } from '../protocol/credentialing.js';
import type { BodyOf, ResponseOf } from '../protocol/route.js';

/** The provisioning server's client of the credentialing server (steps 8–9, mutual TLS). */
export class CredentialingConsumer {
  constructor(private readonly client: PeerClient) {}

  fetchPackage(
    credentialingUrl: string,
    body: BodyOf<typeof fetchPackage>,
  ): Promise<ResponseOf<typeof fetchPackage>> {
    return this.client.call(credentialingUrl, fetchPackage, { body });
  }
}
