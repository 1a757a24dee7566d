import { SimcredError } from '../errors/index.js';
import { lengthPrefixed, utf8 } from './encoding.js';
import { checkDsimId } from './session-nonce.js';

/** Domain-separation label of the registration lookup proof (DESIGN §2 step 2). */
export const LOOKUP_PROOF_LABEL = 'simcred/v1/registration-lookup';

/**
 * The bytes a device signs to get its registration nonce (step 2):
 * u16(len) ‖ "simcred/v1/registration-lookup" ‖ u16(len) ‖ challenge ‖ u16(len) ‖ DSIM_ID (UTF-8).
 * Its own label keeps it from ever being usable as a step-4 proof, and the reverse.
 *
 * @example
 *   const { alg, signature } = signDeviceMessage(key, lookupProofMessage({ challenge, dsimId }));
 */
export function lookupProofMessage(input: { challenge: Uint8Array; dsimId: string }): Buffer {
  return challengeProofMessage(LOOKUP_PROOF_LABEL, input);
}

/** Domain-separation label of the proof that fetches a transfer statement (operator change). */
export const TRANSFER_FETCH_PROOF_LABEL = 'simcred/v1/transfer-fetch';

/**
 * The bytes a device signs to fetch its transfer statement from a registration server: as
 * {@link lookupProofMessage}, under its own label, so neither proof passes for the other.
 *
 * @example
 *   const { alg, signature } = signDeviceMessage(key, transferFetchProofMessage({ challenge, dsimId }));
 */
export function transferFetchProofMessage(input: { challenge: Uint8Array; dsimId: string }): Buffer {
  return challengeProofMessage(TRANSFER_FETCH_PROOF_LABEL, input);
}

function challengeProofMessage(label: string, input: { challenge: Uint8Array; dsimId: string }): Buffer {
  if (
    !(input.challenge instanceof Uint8Array) ||
    input.challenge.length < 16 ||
    input.challenge.length > 128
  ) {
    throw new SimcredError('SIMCRED_BAD_REQUEST', 'the lookup challenge must be 16–128 bytes');
  }
  return lengthPrefixed(utf8(label), input.challenge, checkDsimId(input.dsimId));
}
