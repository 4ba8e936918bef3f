export * from './format.js';
export { type ConnectSettings, settingsFromUrl } from './settings.js';
