import { parentPort, workerData } from 'node:worker_threads';
import {
  makeDeviceCredentials,
  prepareDeviceIssuer,
  type DeviceIssuingContext,
} from './device-certificates.js';

/** Worker thread of `simcred devices manufacture`: key pairs and certificates for batches of DSIM_IDs. */

export interface WorkerRequest {
  batch: number;
  dsimIds: string[];
}

export type WorkerResponse =
  | { batch: number; credentials: Awaited<ReturnType<typeof makeDeviceCredentials>> }
  | { batch: number; error: string };

const issuer = prepareDeviceIssuer(workerData as DeviceIssuingContext);

parentPort?.on('message', (request: WorkerRequest) => {
  makeDeviceCredentials(issuer, request.dsimIds).then(
    (credentials) => parentPort?.postMessage({ batch: request.batch, credentials } satisfies WorkerResponse),
    (err: unknown) =>
      parentPort?.postMessage({
        batch: request.batch,
        error: err instanceof Error ? err.message : String(err),
      } satisfies WorkerResponse),
  );
});
