export * from './format.js';
export { replacesShownSession } from './latest.js';
export { type ConnectSettings, settingsFromUrl } from './settings.js';
