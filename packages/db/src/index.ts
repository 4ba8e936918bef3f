export * from './accounts.js';
export * from './database.js';
export * from './migrate.js';
export * from './query-template.js';
export type * from './schema.js';
