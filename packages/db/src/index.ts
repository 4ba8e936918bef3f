export * from './credentials.js';
export * from './database.js';
export * from './migrate.js';
export type * from './schema.js';
