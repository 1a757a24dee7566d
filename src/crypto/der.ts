import * as asn1js from 'asn1js';

/**
 * Distinguished Encoding Rules (X.690 §10–11) checked on asn1js's parse tree. X.509 parsers in the
 * field (@peculiar/x509, OpenSSL) accept BER and ignore bytes after the certificate; two parsers of one
 * input that disagree are how a value passes one check and crashes the next, so every certificate from
 * outside is held to DER once, at the edge, before any parser sees it.
 *
 * @example
 *   const why = derViolation(Buffer.from(base64, 'base64')); // undefined when the bytes are DER
 */
export function derViolation(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength === 0) return 'empty';
  const parsed = asn1js.fromBER(bytes);
  if (parsed.offset === -1) return `not BER: ${parsed.result.error}`;
  if (parsed.offset !== bytes.byteLength) return `${bytes.byteLength - parsed.offset} bytes after the value`;
  return violationIn(parsed.result);
}

// Universal string and bit/octet types: DER allows only their primitive form (X.690 §10.2).
const PRIMITIVE_ONLY_TAGS = new Set([
  1, 2, 3, 4, 5, 6, 10, 12, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 30,
]);

function violationIn(block: asn1js.AsnType): string | undefined {
  const { idBlock, lenBlock } = block;
  if (lenBlock.isIndefiniteForm) return 'indefinite length';
  // X.690 §10.1: the definite form with the fewest octets.
  if (lenBlock.longFormUsed && lenBlock.blockLength - 1 !== octetsOf(lenBlock.length)) {
    return 'length not in its shortest form';
  }
  if (idBlock.isHexOnly && idBlock.valueHexView[0] === 0x80) return 'tag number with a leading zero';
  if (idBlock.tagClass === 1 && idBlock.isConstructed && PRIMITIVE_ONLY_TAGS.has(idBlock.tagNumber)) {
    return 'constructed form of a primitive type';
  }
  // X.690 §11.1: TRUE is 0xFF.
  if (idBlock.tagClass === 1 && idBlock.tagNumber === 1) {
    const value = (block as asn1js.Boolean).valueBlock.valueHexView;
    if (value.length !== 1 || (value[0] !== 0 && value[0] !== 0xff)) return 'BOOLEAN not 0x00 or 0xFF';
  }
  // X.690 §8.3.2: an INTEGER in the fewest octets.
  if (idBlock.tagClass === 1 && idBlock.tagNumber === 2 && !idBlock.isConstructed) {
    const v = (block as asn1js.Integer).valueBlock.valueHexView;
    if (v.length === 0) return 'empty INTEGER';
    if (v.length > 1 && ((v[0] === 0 && v[1]! < 0x80) || (v[0] === 0xff && v[1]! >= 0x80))) {
      return 'INTEGER not in its shortest form';
    }
  }
  if (idBlock.isConstructed) {
    const children = (block as asn1js.Constructed).valueBlock.value ?? [];
    for (const child of children) {
      const why = violationIn(child);
      if (why !== undefined) return why;
    }
  }
  return undefined;
}

/** Octets of the shortest long-form length (0 when the short form must be used). */
function octetsOf(length: number): number {
  if (length < 128) return 0;
  let octets = 0;
  for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) octets++;
  return octets;
}
