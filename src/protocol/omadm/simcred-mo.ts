/**
 * simcred's management object (docs/omadm.md has its DDF): the DM server Replaces the device's
 * ./SimCred/Package leaf with the still-encrypted credential package. JOSE packages travel as text
 * (Format chr: a compact JWS is base64url and dots); XML packages in base64 (Format b64), so the
 * signed document reaches the device byte for byte, whatever the SyncML around it.
 */
import { SimcredError } from '../../errors/index.js';
import { credentialPackage } from '../fields.js';
import type { Item, Meta } from './syncml.js';

export const PACKAGE_NODE = './SimCred/Package';
export const JOSE_PACKAGE_TYPE = 'application/jose';
export const XML_PACKAGE_TYPE = 'application/vnd.simcred.package+xml';

/** The Replace item that carries `pkg` to the device's ./SimCred/Package. */
export function packageItem(pkg: string): { meta: Meta; item: Item } {
  const xml = pkg.startsWith('<');
  return {
    meta: xml ? { format: 'b64', type: XML_PACKAGE_TYPE } : { format: 'chr', type: JOSE_PACKAGE_TYPE },
    item: {
      target: PACKAGE_NODE,
      data: xml ? Buffer.from(pkg, 'utf8').toString('base64') : pkg,
    },
  };
}

/**
 * The package from a Replace/Add of ./SimCred/Package (the command's Meta, or the item's), or throws
 * SIMCRED_DM_MALFORMED (another node, an unknown Type or Format, a value that is no package).
 */
export function packageFromItem(commandMeta: Meta | undefined, item: Item): string {
  if (item.target !== PACKAGE_NODE) throw malformed(`the server writes ${item.target ?? 'no node'}`);
  const meta = { ...commandMeta, ...item.meta };
  let pkg: string;
  if (meta.type === XML_PACKAGE_TYPE && meta.format === 'b64') {
    pkg = Buffer.from(item.data ?? '', 'base64').toString('utf8');
  } else if (meta.type === JOSE_PACKAGE_TYPE && (meta.format ?? 'chr') === 'chr') {
    pkg = item.data ?? '';
  } else {
    throw malformed(`./SimCred/Package of Type ${meta.type ?? '-'} Format ${meta.format ?? '-'}`);
  }
  const parsed = credentialPackage.safeParse(pkg);
  if (!parsed.success || (meta.type === XML_PACKAGE_TYPE) !== pkg.startsWith('<')) {
    throw malformed('./SimCred/Package does not hold a credential package of its Type');
  }
  return parsed.data;
}

function malformed(message: string): SimcredError {
  return new SimcredError('SIMCRED_DM_MALFORMED', message);
}
