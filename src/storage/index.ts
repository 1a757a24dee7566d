export * from './database.js';
export * from './files.js';
