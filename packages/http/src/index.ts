export * from './auth-failures.js';
export * from './connects.js';
export * from './errors.js';
