// The import-cycle check of `npm run lint`: reading imports, resolving them, finding cycles.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findCycles, parseImports, resolveImport, scriptBlocks, stripComments } from './check-cycles.mjs';

function graphOf(edges: Record<string, string[]>): Map<string, string[]> {
  return new Map(Object.entries(edges));
}

describe('findCycles', () => {
  it('finds none in a tree or a diamond', () => {
    expect(findCycles(graphOf({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }))).toEqual([]);
    expect(findCycles(new Map())).toEqual([]);
  });

  it('reports a cycle as a chain that ends where it starts', () => {
    expect(findCycles(graphOf({ chat: ['documents'], documents: ['toasts'], toasts: ['chat'] }))).toEqual([
      ['chat', 'documents', 'toasts', 'chat'],
    ]);
  });

  it('reports a module importing itself, and each separate cycle once', () => {
    const cycles = findCycles(graphOf({ a: ['a', 'b'], b: ['c'], c: ['b'], d: ['e'], e: ['d', 'b'] }));
    expect(cycles).toEqual([
      ['a', 'a'],
      ['b', 'c', 'b'],
      ['d', 'e', 'd'],
    ]);
  });

  it('follows edges to nodes that are not keys', () => {
    expect(findCycles(graphOf({ a: ['outside'] }))).toEqual([]);
  });
});

describe('parseImports', () => {
  it('reads every static form, type-only ones included', () => {
    const code = [
      "import { a, type B } from './a';",
      "import type { C } from '../c';",
      "import D from './d.svelte';",
      "import * as e from './e';",
      'import {',
      '  f,',
      '  g, // why',
      "} from './fg';",
      "export { h } from './h';",
      "export * from './i';",
      "export type { J } from './j';",
      "import './side-effect.css';",
      "import { listen } from '@tauri-apps/api/event';",
    ].join('\n');
    expect(parseImports(code)).toEqual([
      './a', '../c', './d.svelte', './e', './fg', './h', './i', './j', './side-effect.css', '@tauri-apps/api/event',
    ]);
  });

  it('skips comments, strings, dynamic imports and code that only looks like an import', () => {
    const code = [
      "// import { x } from './commented';",
      "/* import { y } from './block';",
      "   import z from './block2'; */",
      "const text = 'import q from \"./in-a-string\"';",
      "const lazy = await import('./lazy');",
      "export const list = Array.from('abc');",
    ].join('\n');
    expect(parseImports(code)).toEqual([]);
    expect(parseImports("const url = 'https://example.com';\nimport { real } from './real';")).toEqual(['./real']);
  });

  it('keeps newlines when it blanks comments', () => {
    expect(stripComments('a /* b\nc */ d // e\nf')).toBe('a     \n     d     \nf');
  });

  it('reads the script blocks of a Svelte file, not its markup', () => {
    const svelte = [
      '<script module lang="ts">',
      "  export { helper } from './helper';",
      '</script>',
      '<script lang="ts">',
      "  import Child from './Child.svelte';",
      '</script>',
      '<p>import nothing from "./markup"</p>',
    ].join('\n');
    expect(parseImports(scriptBlocks(svelte))).toEqual(['./helper', './Child.svelte']);
  });
});

describe('resolveImport', () => {
  const files = new Set(['/ui/src/lib/toasts.svelte.ts', '/ui/src/lib/chat.ts', '/ui/src/components/Icon.svelte', '/ui/src/lib/x/index.ts']);
  const isFile = (path: string) => files.has(resolve(path));
  const from = '/ui/src/lib/chat.ts';

  it('finds .ts, .svelte.ts, .svelte and index files', () => {
    expect(resolveImport(from, './toasts.svelte', isFile)).toBe('/ui/src/lib/toasts.svelte.ts');
    expect(resolveImport(from, './chat', isFile)).toBe('/ui/src/lib/chat.ts');
    expect(resolveImport(from, '../components/Icon.svelte', isFile)).toBe('/ui/src/components/Icon.svelte');
    expect(resolveImport(from, './x', isFile)).toBe('/ui/src/lib/x/index.ts');
    expect(resolveImport(from, './chat.js', isFile)).toBe('/ui/src/lib/chat.ts');
    expect(resolveImport(from, './chat.ts?raw', isFile)).toBe('/ui/src/lib/chat.ts');
  });

  it('says when nothing is there', () => {
    expect(resolveImport(from, './missing', isFile)).toBeNull();
  });
});
