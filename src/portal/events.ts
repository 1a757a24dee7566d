import type { z } from 'zod';
import type { Device, Funnel, Upload } from '../protocol/portal.js';

/** What the portal pushes to browsers (GET /api/v1/stream), with who may see it. */
export type PortalEvent =
  | { type: 'device'; ownerId: string; data: z.infer<typeof Device> }
  | { type: 'upload'; ownerId: string; data: z.infer<typeof Upload> }
  | { type: 'funnel'; data: z.infer<typeof Funnel> };

export interface Viewer {
  accountId: string;
  kind: 'owner' | 'operator';
}

/** Whether a viewer may see an event: owners their own devices and uploads, operators everything. */
export function mayView(viewer: Viewer, event: PortalEvent): boolean {
  if (viewer.kind === 'operator') return true;
  return event.type !== 'funnel' && event.ownerId === viewer.accountId;
}

/**
 * In-process fan-out of portal events to the open server-sent-event streams; each subscriber gets only
 * what `mayView` allows.
 *
 * @example
 *   const stop = hub.subscribe(viewer, (event) => write(event));
 */
export class EventHub {
  private readonly listeners = new Set<{ viewer: Viewer; send: (event: PortalEvent) => void }>();

  subscribe(viewer: Viewer, send: (event: PortalEvent) => void): () => void {
    const entry = { viewer, send };
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  publish(event: PortalEvent): void {
    for (const { viewer, send } of this.listeners) if (mayView(viewer, event)) send(event);
  }

  /** Whether any operator is listening (the funnel is computed only then). */
  hasOperators(): boolean {
    for (const { viewer } of this.listeners) if (viewer.kind === 'operator') return true;
    return false;
  }
}
