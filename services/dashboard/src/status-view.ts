import type { CloseReason } from '@wizard-stream/client';
import { byTestId } from './dom.js';
import { CONNECTION_LABELS, type PageConnectionState } from './format.js';

/** The connection pill, what the page follows, and problems worth a sentence. */
export class StatusView {
  showState(state: PageConnectionState): void {
    const pill = byTestId('connection-state');
    pill.dataset.state = state;
    pill.textContent = CONNECTION_LABELS[state];
  }

  showScope(workflowId: string, skillId: string | undefined): void {
    const scope = skillId ? `${workflowId} / ${skillId}` : workflowId;
    byTestId('connection-state').title = `following ${scope}`;
    byTestId('scope').textContent = scope;
  }

  showNotice(message: string | undefined): void {
    const notice = byTestId('notice');
    notice.hidden = message === undefined;
    notice.textContent = message ?? '';
  }

  showClosed(close: CloseReason): void {
    if (close.reason === 'no_content') this.showNotice('Streaming is switched off on the server (204).');
    if (close.reason === 'rejected') this.showNotice(`The stream was refused: ${close.error.message}`);
  }
}
