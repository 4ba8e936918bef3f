export * from './accounts.js';
export * from './database.js';
export * from './migrate.js';
export { QUERY_READ_TIMEOUT } from './prepared-statements.js';
export * from './query-template.js';
export type * from './schema.js';
