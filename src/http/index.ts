export * from './server.js';
export * from './routes.js';
export * from './client.js';
export * from './tls.js';
export * from './running.js';
export * from './ndjson.js';
