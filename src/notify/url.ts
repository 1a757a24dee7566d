import { isIP } from 'node:net';
import { SimcredError } from '../errors/index.js';

/**
 * A webhook URL as simcred accepts it: https; http only to a loopback address (a receiver on the same
 * machine) unless `allowHttp` (notify.allowHttp in the config); no user:password (the secret is what
 * authenticates), no fragment. Returns the URL as given, or throws SIMCRED_WEBHOOK_URL_REFUSED.
 *
 * @example
 *   checkWebhookUrl('https://ops.example.net/simcred', false); // ok
 *   checkWebhookUrl('http://10.0.0.5/hook', false); // SIMCRED_WEBHOOK_URL_REFUSED
 */
export function checkWebhookUrl(url: string, allowHttp: boolean): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SimcredError('SIMCRED_WEBHOOK_URL_REFUSED', 'the webhook URL is not a URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')
    throw new SimcredError('SIMCRED_WEBHOOK_URL_REFUSED', 'a webhook URL must be https');
  if (!parsed.hostname) throw new SimcredError('SIMCRED_WEBHOOK_URL_REFUSED', 'the webhook URL has no host');
  if (parsed.username || parsed.password)
    throw new SimcredError('SIMCRED_WEBHOOK_URL_REFUSED', 'a webhook URL may not carry credentials');
  if (parsed.hash)
    throw new SimcredError('SIMCRED_WEBHOOK_URL_REFUSED', 'a webhook URL may not have a fragment');
  if (parsed.protocol === 'http:' && !allowHttp && !isLoopback(parsed.hostname))
    throw new SimcredError(
      'SIMCRED_WEBHOOK_URL_REFUSED',
      'a webhook URL must be https (http only to a loopback address, or with notify.allowHttp)',
    );
  return url;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return isIP(host) === 6 && host === '::1';
}
