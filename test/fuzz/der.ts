// DER for the fuzzers: an independent strict-DER check (the oracle a parser's verdict is compared
// with) and fast-check arbitraries that derive inputs from a valid DER object — the object itself,
// byte-level damage, and the three encodings that are BER but not DER (trailing data, indefinite
// lengths, non-minimal lengths), each re-encoded so that every enclosing length stays consistent.
import fc from 'fast-check';

/** One TLV as read by {@link readTlv}: identifier octets, and either children or primitive contents. */
export interface Tlv {
  identifier: Uint8Array;
  constructed: boolean;
  children?: Tlv[];
  contents?: Uint8Array;
}

/**
 * X.690 §10.1 / §8.1: is `bytes` exactly one element, with definite lengths in their shortest form all
 * the way down its constructed elements? (Primitive contents are not looked into.)
 *
 * @example
 *   isStrictDer(certificateDer); // true
 *   isStrictDer(Buffer.concat([certificateDer, Buffer.of(0)])); // false: trailing data
 */
export function isStrictDer(bytes: Uint8Array): boolean {
  return derFault(bytes) === undefined;
}

/** Why `bytes` is not exactly one strict DER element (see {@link isStrictDer}), or undefined if it is. */
export function derFault(bytes: Uint8Array): string | undefined {
  try {
    return readTlv(bytes, 0, true).end === bytes.byteLength ? undefined : 'trailing data';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** A nested element whose length runs past the end of its SEQUENCE: not BER at all, yet asn1js reads it. */
export const NESTING_OVERRUN = 'children overrun their parent';
/** A length in more than four octets (no simcred object is 4 GiB: such a length has leading zeros). */
export const LONG_LENGTH = 'length in more than four octets';

/** Reads one element at `offset`; `strict` refuses indefinite and non-minimal lengths. Throws otherwise. */
export function readTlv(bytes: Uint8Array, offset: number, strict: boolean): { tlv: Tlv; end: number } {
  let i = offset;
  const first = byteAt(bytes, i++);
  if ((first & 0x1f) === 0x1f) {
    // High tag number form: base-128 octets, the first not 0x80 (X.690 §8.1.2.4.2 c).
    if (strict && byteAt(bytes, i) === 0x80) throw new Error('non-minimal tag');
    while (byteAt(bytes, i++) & 0x80);
  }
  const identifier = bytes.subarray(offset, i);
  const constructed = (first & 0x20) !== 0;
  const lengthOctet = byteAt(bytes, i++);
  let length: number;
  if (lengthOctet === 0x80) {
    if (strict || !constructed) throw new Error('indefinite length');
    const children: Tlv[] = [];
    while (!(byteAt(bytes, i) === 0 && byteAt(bytes, i + 1) === 0)) {
      const child = readTlv(bytes, i, strict);
      children.push(child.tlv);
      i = child.end;
    }
    return { tlv: { identifier, constructed, children }, end: i + 2 };
  }
  if (lengthOctet & 0x80) {
    const count = lengthOctet & 0x7f;
    if (count > 4) throw new Error(LONG_LENGTH);
    length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + byteAt(bytes, i++);
    if (strict && (length < 0x80 || byteAt(bytes, i - count) === 0)) throw new Error('non-minimal length');
  } else {
    length = lengthOctet;
  }
  const end = i + length;
  if (end > bytes.byteLength) throw new Error('truncated');
  if (!constructed) return { tlv: { identifier, constructed, contents: bytes.subarray(i, end) }, end };
  const children: Tlv[] = [];
  while (i < end) {
    const child = readTlv(bytes, i, strict);
    children.push(child.tlv);
    i = child.end;
  }
  if (i !== end) throw new Error(NESTING_OVERRUN);
  return { tlv: { identifier, constructed, children }, end };
}

function byteAt(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  if (b === undefined) throw new Error('truncated');
  return b;
}

/** How one element's length is written when re-encoding. */
export type LengthStyle = 'der' | 'long-form-padded' | 'indefinite';

/** Encodes a TLV tree; `styleOf` chooses each element's length form (DER everywhere by default). */
export function encodeTlv(tlv: Tlv, styleOf: (tlv: Tlv) => LengthStyle = () => 'der'): Buffer {
  const contents = tlv.constructed
    ? Buffer.concat(tlv.children!.map((c) => encodeTlv(c, styleOf)))
    : Buffer.from(tlv.contents!);
  const style = styleOf(tlv);
  if (style === 'indefinite' && tlv.constructed) {
    return Buffer.concat([tlv.identifier, Buffer.of(0x80), contents, Buffer.of(0, 0)]);
  }
  return Buffer.concat([
    tlv.identifier,
    lengthOctets(contents.byteLength, style === 'long-form-padded'),
    contents,
  ]);
}

function lengthOctets(length: number, padded: boolean): Buffer {
  if (length < 0x80 && !padded) return Buffer.of(length);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
  // Padded: a leading zero octet (or the long form for a short length) — BER, never DER.
  if (padded) octets.unshift(0);
  return Buffer.from([0x80 | octets.length, ...octets]);
}

/** Every element of a tree, depth first (the root first). */
export function allElements(tlv: Tlv): Tlv[] {
  return [tlv, ...(tlv.children ?? []).flatMap(allElements)];
}

/** A non-DER encoding of a valid DER object, and why it is not DER. */
export interface NonDer {
  kind: 'trailing' | 'indefinite' | 'non-minimal-length';
  bytes: Buffer;
}

/**
 * BER that is not DER, made from a valid DER object: bytes after its end, an indefinite length on
 * one constructed element, or a padded long-form length on one element (enclosing lengths re-computed).
 */
export function nonDerOf(der: Uint8Array): fc.Arbitrary<NonDer> {
  const root = readTlv(der, 0, true).tlv;
  const elements = allElements(root);
  const constructed = elements.filter((e) => e.constructed);
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 16 }).map((extra) => ({
      kind: 'trailing' as const,
      bytes: Buffer.concat([der, extra]),
    })),
    fc.nat(constructed.length - 1).map((i) => ({
      kind: 'indefinite' as const,
      bytes: encodeTlv(root, (e) => (e === constructed[i] ? 'indefinite' : 'der')),
    })),
    fc.nat(elements.length - 1).map((i) => ({
      kind: 'non-minimal-length' as const,
      bytes: encodeTlv(root, (e) => (e === elements[i] ? 'long-form-padded' : 'der')),
    })),
  );
}

/** Byte-level damage to a valid object: flips, overwrites, cuts, insertions, deletions. */
export function damagedBytes(valid: Uint8Array): fc.Arbitrary<Buffer> {
  const n = valid.byteLength;
  const copy = () => Buffer.from(valid);
  return fc.oneof(
    fc
      .array(fc.tuple(fc.nat(n - 1), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 })
      .map((flips) => {
        const b = copy();
        for (const [at, bit] of flips) b[at]! ^= 1 << bit;
        return b;
      }),
    fc.tuple(fc.nat(n - 1), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([at, bytes]) => {
      const b = copy();
      b.set(bytes.subarray(0, Math.max(0, n - at)), at);
      return b;
    }),
    fc.nat(n - 1).map((at) => copy().subarray(0, at)),
    fc
      .tuple(fc.nat(n), fc.uint8Array({ minLength: 1, maxLength: 8 }))
      .map(([at, bytes]) => Buffer.concat([valid.subarray(0, at), bytes, valid.subarray(at)])),
    fc
      .tuple(fc.nat(n - 1), fc.integer({ min: 1, max: 8 }))
      .map(([at, count]) => Buffer.concat([valid.subarray(0, at), valid.subarray(at + count)])),
  );
}

/** Input for a DER parser: the valid object, damaged bytes, non-DER encodings of it, or random bytes. */
export type DerInput =
  | { kind: 'valid'; bytes: Buffer }
  | { kind: 'damaged'; bytes: Buffer }
  | NonDer
  | { kind: 'random'; bytes: Buffer };

export function derInputs(valid: readonly Uint8Array[]): fc.Arbitrary<DerInput> {
  const pick = <T>(make: (der: Uint8Array) => fc.Arbitrary<T>) => fc.oneof(...valid.map(make));
  return fc.oneof(
    {
      weight: 1,
      arbitrary: fc.constantFrom(...valid).map((v) => ({ kind: 'valid' as const, bytes: Buffer.from(v) })),
    },
    { weight: 4, arbitrary: pick(damagedBytes).map((bytes) => ({ kind: 'damaged' as const, bytes })) },
    { weight: 4, arbitrary: pick(nonDerOf) },
    {
      weight: 2,
      arbitrary: fc
        .uint8Array({ maxLength: 512 })
        .map((b) => ({ kind: 'random' as const, bytes: Buffer.from(b) })),
    },
  );
}
