export { type RunningWriteApi, type StartOptions, startWriteApi } from './app.js';
export { loadWriteApiConfig, type WriteApiConfig } from './config.js';
