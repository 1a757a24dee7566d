import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { PortalApi, Session } from './api.js';
import type { LiveUpdates } from './stream.js';

/** What every page needs: the API client, the live stream, the session and navigation. */
export interface AppServices {
  api: PortalApi;
  live: LiveUpdates;
  session: Session | null;
  setSession(session: Session | null): void;
  navigate(path: string, options?: { replace?: boolean }): void;
}

export const AppContext = createContext<AppServices | null>(null);

export function useApp(): AppServices {
  const app = useContext(AppContext);
  if (!app) throw new Error('useApp outside <AppContext.Provider>');
  return app;
}
