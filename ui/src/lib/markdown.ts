// Markdown for chat messages. Raw HTML in a message is shown as text, never run: markdown-it
// escapes it (`html: false`) and refuses `javascript:`/`vbscript:`/`data:` links; links open
// nothing (the page intercepts clicks), since nothing may leave the machine.
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: false, breaks: true, typographer: false });

// Tables scroll sideways instead of widening the bubble.
md.renderer.rules.table_open = () => '<div class="md-table"><table>';
md.renderer.rules.table_close = () => '</table></div>';

export function renderMarkdown(text: string): string {
  return md.render(text);
}
