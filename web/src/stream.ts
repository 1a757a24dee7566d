import type { Device, Funnel, Upload } from './api.js';
import { routeUrl } from './api.js';

/** What the portal pushes on GET /api/v1/stream, by event name. */
export interface StreamEvents {
  device: Device;
  upload: Upload;
  funnel: Funnel;
}
type Listener<K extends keyof StreamEvents> = (value: StreamEvents[K]) => void;

/**
 * One EventSource per signed-in tab, shared by every view: the pages subscribe to the events they
 * show, so a device's state arrives when it changes and nothing polls device by device. The browser
 * reconnects by itself after a dropped connection.
 */
export class LiveUpdates {
  private source: EventSource | null = null;
  private readonly listeners: { [K in keyof StreamEvents]: Set<Listener<K>> } = {
    device: new Set(),
    upload: new Set(),
    funnel: new Set(),
  };
  /** Called with true when the stream is connected, false while it is reconnecting. */
  onStatus: (connected: boolean) => void = () => {};

  open(): void {
    if (this.source) return;
    const source = new EventSource(routeUrl('eventStream'));
    source.onopen = () => this.onStatus(true);
    source.onerror = () => this.onStatus(false);
    for (const name of Object.keys(this.listeners) as (keyof StreamEvents)[]) {
      source.addEventListener(name, (event) => {
        let value: unknown;
        try {
          value = JSON.parse((event as MessageEvent<string>).data);
        } catch {
          return; // a malformed event is ignored; the next one carries the full state again
        }
        for (const listener of this.listeners[name]) (listener as (v: unknown) => void)(value);
      });
    }
    this.source = source;
  }

  close(): void {
    this.source?.close();
    this.source = null;
  }

  /** Returns the function that unsubscribes (for a useEffect clean-up). */
  on<K extends keyof StreamEvents>(name: K, listener: Listener<K>): () => void {
    this.listeners[name].add(listener);
    return () => this.listeners[name].delete(listener);
  }
}
