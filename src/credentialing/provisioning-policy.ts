import { createHash } from 'node:crypto';
import { SimcredError } from '../errors/index.js';

/**
 * How the credentialing subsystem picks a provisioning server per device (step 6).
 * - hash: the same device always goes to the same server (stable across retries and instances).
 * - round-robin: spreads devices evenly, per instance.
 * - first: always the first listed (the others are standbys).
 */
export type ProvisioningPolicy = 'hash' | 'round-robin' | 'first';

export function provisioningChooser(
  servers: string[],
  policy: ProvisioningPolicy,
): (dsimId: string) => string {
  if (servers.length === 0)
    throw new SimcredError('SIMCRED_CONFIG_INVALID', 'no provisioning server configured');
  switch (policy) {
    case 'first':
      return () => servers[0]!;
    case 'round-robin': {
      let next = 0;
      return () => servers[next++ % servers.length]!;
    }
    case 'hash':
      return (dsimId) =>
        servers[createHash('sha256').update(dsimId).digest().readUInt32BE(0) % servers.length]!;
  }
}
