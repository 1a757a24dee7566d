import { PeerClient } from '../http/index.js';
import { processCpuMs, round } from './processes.js';

/** A role's base URL, named as the bench tables name processes (registration-1, …). */
export interface RoleEndpoint {
  name: string;
  url: string;
}

/**
 * How many requests each role has answered so far (GET /health reports its counter). The OCSP
 * responder answers /health too, but its requests are not part of these endpoints' counts.
 *
 * @example
 *   const before = await requestsServed(endpoints, operatorRootPem);
 */
export async function requestsServed(
  endpoints: readonly RoleEndpoint[],
  operatorRootPem: string,
): Promise<number[]> {
  const client = new PeerClient({ tls: { ca: [operatorRootPem] }, connections: 1 });
  try {
    return await Promise.all(
      endpoints.map(async ({ url }) => {
        const { text } = await client.send(`${url}/health`, 'GET', undefined, '');
        return Number((JSON.parse(text) as { requestsServed?: number }).requestsServed ?? 0);
      }),
    );
  } finally {
    await client.close();
  }
}

/** CPU of one HTTPS request with an empty handler, on each side. */
export interface RequestCost {
  requests: number;
  /** Server process CPU per request (TLS, HTTP parsing, fastify, the socket writes), ms. */
  serverMs: number;
  /** This process's CPU per request (undici, TLS), ms. */
  clientMs: number;
}

/**
 * The transport floor of the design: `requests` GETs of /health (an empty handler) over keep-alive
 * HTTPS from this process to a server process, 16 at once — what each message costs before any
 * simcred logic runs, measured on the same machine in the same run as everything else.
 *
 * @example
 *   const cost = await measureRequestCost(urls.registration[0], pid, operatorRootPem);
 */
export async function measureRequestCost(
  url: string,
  serverPid: number,
  operatorRootPem: string,
  requests = 3000,
): Promise<RequestCost> {
  const client = new PeerClient({ tls: { ca: [operatorRootPem] }, connections: 16 });
  try {
    const get = () => client.send(`${url}/health`, 'GET', undefined, '');
    for (let i = 0; i < 200; i++) await get(); // warm the JIT on both sides
    const serverBefore = processCpuMs(serverPid);
    const selfBefore = process.cpuUsage();
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < requests) {
          sent++;
          await get();
        }
      }),
    );
    const self = process.cpuUsage(selfBefore);
    return {
      requests,
      serverMs: round((processCpuMs(serverPid) - serverBefore) / requests, 3),
      clientMs: round((self.user + self.system) / 1000 / requests, 3),
    };
  } finally {
    await client.close();
  }
}
