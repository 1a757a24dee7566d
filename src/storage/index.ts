export * from './database.js';
export * from './files.js';
export * from './feed.js';
export * from './coalesced.js';
export * from './transactions.js';
