export * from './format.js';
export { compareNewestFirst, type FrameEffect, SessionListModel } from './session-list.js';
export { type ConnectSettings, settingsFromUrl } from './settings.js';
