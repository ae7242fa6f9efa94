import { describe, expect, it } from 'vitest';
import { renderMarkdown } from './markdown';

describe('renderMarkdown', () => {
  it('renders code blocks and tables', () => {
    const html = renderMarkdown('```js\nconst a = 1 < 2;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |');
    expect(html).toContain('<pre><code class="language-js">const a = 1 &lt; 2;');
    expect(html).toContain('<div class="md-table"><table>');
    expect(html).toContain('<td>1</td>');
  });

  it('shows raw HTML as text instead of running it', () => {
    const html = renderMarkdown('<img src=x onerror="alert(1)"> <script>alert(2)</script>');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;');
  });

  it('refuses script links', () => {
    const html = renderMarkdown('[click](javascript:alert(1))');
    expect(html).not.toContain('href="javascript:');
  });
});
