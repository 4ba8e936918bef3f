import DOMPurify from 'dompurify';
import { marked } from 'marked';

/**
 * The handoff report is markdown written by an agent: anything in it may be hostile. It is the one
 * piece of the page that becomes HTML, and only after DOMPurify has removed scripts, event handlers
 * and javascript: URLs.
 */
export function renderMarkdown(markdown: string): string {
  const html = marked.parse(markdown, { async: false, gfm: true });
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
}
