/**
 * Hardened XML parsing for the XML credential package (docs/crypto.md §6b). @xmldom/xmldom parses; this
 * module refuses what the package never needs before and after it does: any DOCTYPE (so no DTD, no
 * entity declaration, no external entity and no entity expansion, billion laughs included), processing
 * instructions other than the XML declaration, and documents beyond the size, depth and node limits.
 */
import { DOMParser, type Document, type Element, type Node } from '@xmldom/xmldom';
import { SimcredError } from '../errors/index.js';

export interface XmlLimits {
  /** Largest document, in characters. */
  maxChars: number;
  /** Deepest element nesting (the document element is depth 1). */
  maxDepth: number;
  /** Most nodes of any kind (elements, attributes, text). */
  maxNodes: number;
}

/** The XML package's limits: a package is about 4–6 kB, 6 levels deep, ~80 nodes. */
export const XML_PACKAGE_LIMITS: XmlLimits = { maxChars: 64 * 1024, maxDepth: 16, maxNodes: 2000 };

const ELEMENT_NODE = 1;
const ATTRIBUTE_NODE = 2;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;
const PROCESSING_INSTRUCTION_NODE = 7;
const COMMENT_NODE = 8;
const DOCUMENT_TYPE_NODE = 10;

/**
 * Parses `text` as a namespace-aware XML document, or throws: SIMCRED_XML_TOO_LARGE (over
 * `limits.maxChars`, `maxDepth` or `maxNodes`), SIMCRED_XML_DTD_FORBIDDEN (a DOCTYPE anywhere, checked
 * on the text before the parser sees it and on the tree after), SIMCRED_XML_MALFORMED (not well-formed,
 * an undeclared entity, a processing instruction other than the XML declaration).
 *
 * @example
 *   const doc = parseXmlStrict(text, XML_PACKAGE_LIMITS);
 *   doc.documentElement.localName; // 'CredentialPackage'
 */
export function parseXmlStrict(text: string, limits: XmlLimits = XML_PACKAGE_LIMITS): Document {
  if (typeof text !== 'string') throw new SimcredError('SIMCRED_XML_MALFORMED', 'the XML is not text');
  if (text.length > limits.maxChars) {
    throw new SimcredError('SIMCRED_XML_TOO_LARGE', `the XML is larger than ${limits.maxChars} characters`);
  }
  // A DOCTYPE may only precede the document element; markup declarations only occur inside one. Both
  // are refused on sight, so nothing downstream (xml-crypto, xml-encryption parse again) ever meets one.
  if (/<!DOCTYPE|<!ENTITY|<!ELEMENT|<!ATTLIST|<!NOTATION/i.test(text)) {
    throw new SimcredError('SIMCRED_XML_DTD_FORBIDDEN', 'the XML carries a DOCTYPE or markup declaration');
  }
  let doc: Document;
  try {
    doc = new DOMParser({
      onError: (level, message) => {
        // xmldom reports an undeclared entity (&x;) as an error and goes on; refuse every error.
        if (level !== 'warning') throw new Error(message.split('\n')[0]);
      },
    }).parseFromString(text, 'application/xml');
  } catch (cause) {
    throw new SimcredError('SIMCRED_XML_MALFORMED', 'the XML is not well-formed', { cause });
  }
  if (doc.doctype !== null) {
    throw new SimcredError('SIMCRED_XML_DTD_FORBIDDEN', 'the XML carries a DOCTYPE');
  }
  const root = doc.documentElement;
  if (root === null) throw new SimcredError('SIMCRED_XML_MALFORMED', 'the XML has no document element');
  let declarationSeen = false;
  for (let n = doc.firstChild; n !== null; n = n.nextSibling) {
    if (n.nodeType === DOCUMENT_TYPE_NODE) {
      throw new SimcredError('SIMCRED_XML_DTD_FORBIDDEN', 'the XML carries a DOCTYPE');
    }
    if (n.nodeType === PROCESSING_INSTRUCTION_NODE) {
      // xmldom keeps the XML declaration as a processing instruction named "xml", first if at all.
      if ((n as unknown as { target: string }).target !== 'xml' || declarationSeen || n !== doc.firstChild) {
        throw new SimcredError('SIMCRED_XML_MALFORMED', 'the XML carries a processing instruction');
      }
      declarationSeen = true;
    }
  }
  checkTree(root, limits);
  return doc;
}

/** Depth and node count without recursion (a hostile document must not exhaust the stack). */
function checkTree(root: Element, limits: XmlLimits): void {
  let nodes = 0;
  const stack: [Node, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    nodes++;
    if (depth > limits.maxDepth) {
      throw new SimcredError('SIMCRED_XML_TOO_LARGE', `the XML nests deeper than ${limits.maxDepth} levels`);
    }
    switch (node.nodeType) {
      case ELEMENT_NODE:
        nodes += (node as Element).attributes.length;
        for (let c = node.firstChild; c !== null; c = c.nextSibling) stack.push([c, depth + 1]);
        break;
      case TEXT_NODE:
      case CDATA_SECTION_NODE:
      case COMMENT_NODE:
      case ATTRIBUTE_NODE:
        break;
      case PROCESSING_INSTRUCTION_NODE:
        throw new SimcredError('SIMCRED_XML_MALFORMED', 'the XML carries a processing instruction');
      default:
        // Entity references and anything else a DTD would bring.
        throw new SimcredError('SIMCRED_XML_DTD_FORBIDDEN', 'the XML carries an entity or DTD node');
    }
    if (nodes > limits.maxNodes) {
      throw new SimcredError('SIMCRED_XML_TOO_LARGE', `the XML has more than ${limits.maxNodes} nodes`);
    }
  }
}

/** The element children of `parent`, in document order (text between them must be whitespace). */
export function elementChildren(parent: Element): Element[] {
  const out: Element[] = [];
  for (let c = parent.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === ELEMENT_NODE) out.push(c as Element);
    else if (
      (c.nodeType === TEXT_NODE || c.nodeType === CDATA_SECTION_NODE) &&
      (c.nodeValue ?? '').trim() !== ''
    ) {
      throw new SimcredError('SIMCRED_PACKAGE_MALFORMED', `unexpected text inside ${parent.localName}`);
    }
  }
  return out;
}

/** Every element named {namespace}localName in the subtree of `root` (root included). */
export function descendantsNamed(root: Element, namespace: string, localName: string): Element[] {
  const found: Element[] = [];
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.nodeType !== ELEMENT_NODE) continue;
    const element = node as Element;
    if (element.localName === localName && element.namespaceURI === namespace) found.push(element);
    for (let c = element.firstChild; c !== null; c = c.nextSibling) stack.push(c);
  }
  return found;
}

/** The text of a leaf element (no element children), exactly as written. */
export function leafText(element: Element): string {
  for (let c = element.firstChild; c !== null; c = c.nextSibling) {
    if (c.nodeType === ELEMENT_NODE) {
      throw new SimcredError('SIMCRED_PACKAGE_MALFORMED', `${element.localName} must hold text only`);
    }
  }
  return element.textContent ?? '';
}
