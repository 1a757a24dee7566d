/**
 * Distinguished Encoding Rules (X.690 §8, §10–11), checked on the encoding itself. X.509 and ASN.1
 * parsers in the field (@peculiar/x509, asn1js, OpenSSL) accept BER, read past an element's end or
 * ignore bytes after it, and some throw on odd input; two parsers of one input that disagree are how a
 * value passes one check and crashes the next. So every DER object from outside is held to DER once, at
 * the edge, by this walk over its identifier and length octets, before any parser sees it. It answers
 * for any bytes and never throws.
 *
 * What it refuses: anything but exactly one element; indefinite lengths; lengths not in their shortest
 * form or in more than four octets (no simcred object is 4 GiB); an element running past the one that
 * encloses it; tag numbers not in their shortest form; the constructed form of a primitive type or the
 * primitive form of SEQUENCE / SET; a BOOLEAN other than 0x00 / 0xFF; an INTEGER or ENUMERATED not in
 * its fewest octets; a NULL with contents; a BIT STRING without its unused-bits octet or with more than
 * seven; nesting deeper than 32. Contents of primitive values (OCTET STRING payloads, times, strings)
 * are left to the parsers that give them meaning.
 *
 * @example
 *   derViolation(certificateDer);                                   // undefined: DER
 *   derViolation(Buffer.concat([certificateDer, Buffer.of(0)]));    // '1 bytes after the value'
 */
export function derViolation(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength === 0) return 'empty';
  try {
    const end = checkElement(bytes, 0, bytes.byteLength, 0);
    return end === bytes.byteLength ? undefined : `${bytes.byteLength - end} bytes after the value`;
  } catch (err) {
    if (err instanceof NotDer) return err.message;
    throw err;
  }
}

class NotDer extends Error {}

const MAX_DEPTH = 32;

// Universal types DER allows only in primitive form (X.690 §10.2): BOOLEAN, INTEGER, BIT STRING,
// OCTET STRING, NULL, OBJECT IDENTIFIER, REAL, ENUMERATED, RELATIVE-OID, the string and time types.
const PRIMITIVE_ONLY = new Set([
  1, 2, 3, 4, 5, 6, 9, 10, 12, 13, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30,
]);
const SEQUENCE = 16;
const SET = 17;

/** Checks the element at `offset`, which must end by `limit`; returns where it ends. */
function checkElement(bytes: Uint8Array, offset: number, limit: number, depth: number): number {
  if (depth > MAX_DEPTH) throw new NotDer('nested too deep');
  const at = (index: number): number => {
    if (index >= limit) throw new NotDer('truncated element');
    return bytes[index]!;
  };
  let i = offset;
  const first = at(i++);
  const universal = first >> 6 === 0;
  const constructed = (first & 0x20) !== 0;
  let tag = first & 0x1f;
  if (tag === 0x1f) {
    // High tag number form (X.690 §8.1.2.4): base 128, no leading 0x80, only for numbers above 30.
    if (at(i) === 0x80) throw new NotDer('tag number with a leading zero');
    tag = 0;
    for (let octets = 1; ; octets++) {
      if (octets > 4) throw new NotDer('tag number too large');
      const octet = at(i++);
      tag = tag * 128 + (octet & 0x7f);
      if ((octet & 0x80) === 0) break;
    }
    if (tag < 31) throw new NotDer('tag number not in its shortest form');
  }
  const lengthOctet = at(i++);
  let length = lengthOctet;
  if (lengthOctet === 0x80) throw new NotDer('indefinite length');
  if (lengthOctet > 0x80) {
    const count = lengthOctet & 0x7f;
    if (count > 4) throw new NotDer('length in more than four octets');
    if (at(i) === 0) throw new NotDer('length not in its shortest form');
    length = 0;
    for (let k = 0; k < count; k++) length = length * 256 + at(i++);
    if (length < 0x80) throw new NotDer('length not in its shortest form');
  }
  const end = i + length;
  if (end > limit) throw new NotDer('length runs past the enclosing element');
  if (universal) checkUniversal(tag, constructed, bytes.subarray(i, end));
  if (constructed) {
    while (i < end) i = checkElement(bytes, i, end, depth + 1);
  }
  return end;
}

function checkUniversal(tag: number, constructed: boolean, contents: Uint8Array): void {
  if (constructed && PRIMITIVE_ONLY.has(tag)) throw new NotDer('constructed form of a primitive type');
  if (!constructed && (tag === SEQUENCE || tag === SET)) throw new NotDer('primitive SEQUENCE or SET');
  if (constructed) return;
  switch (tag) {
    case 1: // X.690 §11.1: FALSE is 0x00, TRUE is 0xFF
      if (contents.length !== 1 || (contents[0] !== 0 && contents[0] !== 0xff)) {
        throw new NotDer('BOOLEAN not 0x00 or 0xFF');
      }
      break;
    case 2: // X.690 §8.3.2: INTEGER and ENUMERATED in their fewest octets
    case 10:
      if (contents.length === 0) throw new NotDer('empty INTEGER');
      if (
        contents.length > 1 &&
        ((contents[0] === 0 && contents[1]! < 0x80) || (contents[0] === 0xff && contents[1]! >= 0x80))
      ) {
        throw new NotDer('INTEGER not in its fewest octets');
      }
      break;
    case 3: // X.690 §8.6.2: the unused-bits octet, 0 to 7, and 0 when there are no bits
      if (contents.length === 0 || contents[0]! > 7 || (contents.length === 1 && contents[0] !== 0)) {
        throw new NotDer('BIT STRING without a valid unused-bits octet');
      }
      break;
    case 5:
      if (contents.length !== 0) throw new NotDer('NULL with contents');
      break;
  }
}
