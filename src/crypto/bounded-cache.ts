/**
 * Bounded memo tables for the certificate hot paths (OCSP client and responder, chain verification).
 *
 * Every entry is keyed by the *exact, complete* DER bytes it was derived from (see `derKey`), never by a
 * digest of them or by a name, so a changed input can only ever miss. Only facts that are pure functions
 * of those bytes are kept (a parse, a public key, "this certificate's signature verifies with that
 * issuer's key"); anything that depends on the time or on a request (validity windows, nonces,
 * revocation status) is re-checked by the callers on every use. (One exception, outside this file's
 * callers: the OCSP responder keeps certificate statuses in a BoundedCache and clears it whenever the
 * CA's revocations change; see ocsp/responder/server.ts.)
 */

/**
 * A Map with a size cap that forgets the least recently used entry first.
 *
 * @example
 *   const keys = new BoundedCache<KeyObject>(1000);
 *   keys.get(derKey(spki)) ?? keys.set(derKey(spki), createPublicKey(...));
 */
export class BoundedCache<V> {
  private readonly map = new Map<string, V>();

  constructor(readonly limit: number) {}

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      // Most recently used goes last; eviction takes the first.
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): V {
    this.map.delete(key);
    if (this.map.size >= this.limit) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, value);
    return value;
  }

  /**
   * The value kept for these exact bytes, or `make()`'s, kept from now on; `count` hears whether it
   * was a hit (for the benchmark's counters).
   *
   * @example
   *   const key = publicKeys.remember(der, () => new X509Certificate(der).publicKey, (hit) => stats.record(hit));
   */
  remember(bytes: Uint8Array | ArrayBuffer, make: () => V, count?: (hit: boolean) => void): V {
    const key = derKey(bytes);
    const hit = this.get(key);
    count?.(hit !== undefined);
    return hit ?? this.set(key, make());
  }

  get size(): number {
    return this.map.size;
  }

  clear(): void {
    this.map.clear();
  }
}

/**
 * The exact bytes as a Map key (one UTF-16 code unit per byte): two keys are equal if and only if the
 * byte strings are.
 */
export function derKey(bytes: Uint8Array | ArrayBuffer): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('latin1');
}

/** A key for an ordered pair of DER values (length-prefixed, so no two pairs share one). */
export function derPairKey(a: Uint8Array, b: Uint8Array): string {
  return `${a.byteLength}:${derKey(a)}${derKey(b)}`;
}
