export { type RunningWriteApi, type StartOptions, startWriteApi } from './app.js';
export { signStreamToken, verifyStreamToken } from './auth/stream-tokens.js';
export { loadWriteApiConfig, type WriteApiConfig } from './config.js';
