export * from './connection.js';
export * from './publish.js';
export * from './subscribe.js';
