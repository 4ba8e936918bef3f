// Bundled by the browser SDK test: exposes the subscribe client to pages driven by playwright.
import { subscribe } from '@wizard-stream/client';

(window as unknown as { wizardClient: { subscribe: typeof subscribe } }).wizardClient = { subscribe };
