export * from './connection.js';
export * from './metrics.js';
export * from './publish.js';
export * from './settings.js';
export * from './subscribe.js';
