export * from './auth-failures.js';
export * from './errors.js';
