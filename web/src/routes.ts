import type * as portal from '../../src/protocol/portal.js';

/**
 * The portal routes this front end calls, by their export name in src/protocol/portal.ts. Only
 * names of declared routes type-check here; test/portal/web.test.ts checks each method and path
 * against the contract itself, so the browser cannot drift from the server.
 */
export type RouteName = {
  [K in keyof typeof portal]: (typeof portal)[K] extends { id: string; path: string } ? K : never;
}[keyof typeof portal];

export const ROUTES = {
  signUp: { method: 'POST', path: '/api/v1/accounts' },
  logIn: { method: 'POST', path: '/api/v1/session' },
  currentSession: { method: 'GET', path: '/api/v1/session' },
  logOut: { method: 'DELETE', path: '/api/v1/session' },
  listPlans: { method: 'GET', path: '/api/v1/plans' },
  createContract: { method: 'POST', path: '/api/v1/contracts' },
  retryPayment: { method: 'POST', path: '/api/v1/contracts/:contractId/payment' },
  listContracts: { method: 'GET', path: '/api/v1/contracts' },
  getContract: { method: 'GET', path: '/api/v1/contracts/:contractId' },
  listDevices: { method: 'GET', path: '/api/v1/contracts/:contractId/devices' },
  addDevices: { method: 'POST', path: '/api/v1/contracts/:contractId/devices' },
  uploadDevices: { method: 'POST', path: '/api/v1/contracts/:contractId/uploads' },
  listUploads: { method: 'GET', path: '/api/v1/uploads' },
  cancelDevice: { method: 'DELETE', path: '/api/v1/contracts/:contractId/devices/:dsimId' },
  fleetFunnel: { method: 'GET', path: '/api/v1/funnel' },
  deviceTimeline: { method: 'GET', path: '/api/v1/devices/:dsimId' },
  eventStream: { method: 'GET', path: '/api/v1/stream' },
} as const satisfies Partial<Record<RouteName, { method: 'GET' | 'POST' | 'DELETE'; path: string }>>;
