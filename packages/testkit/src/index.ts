export * from './database.js';
export * from './jwks-server.js';
export * from './metrics.js';
export * from './nats-server.js';
export * from './ports.js';
export * from './routes.js';
export * from './service-process.js';
export * from './until.js';
