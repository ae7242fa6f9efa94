// Fails (exit 1) when the UI's modules import each other in a cycle, printing each cycle as a
// chain of files. A cycle makes evaluation order depend on which module is imported first (a
// value can be read before it is defined), and type-only cycles still tangle what belongs where,
// so `import type` counts too. Run by `npm run lint`; no dependencies, so it cannot drift from a
// tool's idea of .svelte files.
//
// What counts as an edge: `import … from './x'`, `import './x'`, `export … from './x'` with a
// relative specifier, in .ts/.js/.mjs files and in the <script> blocks of .svelte files. A dynamic
// `import('./x')` does not: it runs after both modules are evaluated, which is how a cycle is
// broken on purpose. A specifier resolves like Vite's: as written, then with .ts, .svelte.ts,
// .svelte, .js, then as a folder's index.ts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The files whose imports are read. */
const SOURCE = /\.(ts|js|mjs|svelte)$/;
/** Tried after the specifier as written, in this order. */
const SUFFIXES = ['.ts', '.svelte.ts', '.svelte', '.js', '/index.ts', '/index.js'];

/**
 * The source with comments blanked out (newlines kept), so a commented-out import is not read.
 * Strings and template literals are skipped whole, so `'//'` inside one is not a comment.
 * @param {string} source
 * @returns {string}
 */
export function stripComments(source) {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? source.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end < 0 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      // A quoted string ends at its quote (or, broken, at the line's end); a template literal
      // may span lines. `${…}` inside a template is kept as text: imports never live there.
      let j = i + 1;
      while (j < source.length && source[j] !== c && (c === '`' || source[j] !== '\n')) {
        j += source[j] === '\\' ? 2 : 1;
      }
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i += 1;
    }
  }
  return out;
}

/**
 * The contents of a .svelte file's <script> blocks (instance and module), joined.
 * @param {string} source
 * @returns {string}
 */
export function scriptBlocks(source) {
  const blocks = [];
  for (const match of source.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)) blocks.push(match[1] ?? '');
  return blocks.join('\n');
}

// `import x from`, `import { a, type B } from`, `import type { C } from`, `import * as d from`,
// `export { e } from`, `export * from`, `export type { F } from`, `import './g'`: a statement
// that starts a line, with only names, braces, commas and `*` before `from`.
const STATIC_IMPORT =
  /^[ \t]*(?:import|export)[\w$\s{},*]*?\bfrom[ \t\n]*(['"])([^'"\n]+)\1|^[ \t]*import[ \t]*(['"])([^'"\n]+)\3/gm;

/**
 * The specifiers a module imports or re-exports statically (relative or not), in order.
 * @param {string} code  a .ts/.js module, or the script of a .svelte file
 * @returns {string[]}
 */
export function parseImports(code) {
  const specifiers = [];
  for (const match of stripComments(code).matchAll(STATIC_IMPORT)) {
    const specifier = match[2] ?? match[4];
    if (specifier) specifiers.push(specifier);
  }
  return specifiers;
}

/**
 * Resolves a relative specifier to an existing file, or null.
 * @param {string} from  the importing file (absolute)
 * @param {string} specifier
 * @param {(path: string) => boolean} isFile
 * @returns {string | null}
 */
export function resolveImport(from, specifier, isFile) {
  const base = resolve(dirname(from), specifier.replace(/[?#].*$/, ''));
  if (isFile(base)) return base;
  for (const suffix of SUFFIXES) {
    if (isFile(base + suffix)) return base + suffix;
  }
  // TypeScript's ESM style: `./x.js` written for `./x.ts`.
  if (base.endsWith('.js') && isFile(`${base.slice(0, -3)}.ts`)) return `${base.slice(0, -3)}.ts`;
  return null;
}

/**
 * The cycles of a graph, one per back edge met by a depth-first search from each node in sorted
 * order: every graph with a cycle has one, and removing the reported ones and running again
 * finds any that were hidden behind them. Each cycle starts and ends with the same node, and is
 * reported once (whichever node the search met it from).
 * @param {ReadonlyMap<string, readonly string[]>} graph  node → the nodes it imports
 * @returns {string[][]}
 */
export function findCycles(graph) {
  /** @type {Map<string, 'active' | 'done'>} */
  const state = new Map();
  /** @type {string[]} */
  const stack = [];
  /** @type {string[][]} */
  const cycles = [];
  const seen = new Set();

  /** @param {string} node */
  const visit = (node) => {
    state.set(node, 'active');
    stack.push(node);
    for (const next of [...(graph.get(node) ?? [])].sort()) {
      const s = state.get(next);
      if (s === 'active') {
        const cycle = stack.slice(stack.indexOf(next));
        // The same cycle met from another node is a rotation of this one.
        const key = rotateToSmallest(cycle).join('\0');
        if (!seen.has(key)) {
          seen.add(key);
          cycles.push([...cycle, next]);
        }
      } else if (s === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };

  for (const node of [...graph.keys()].sort()) {
    if (!state.has(node)) visit(node);
  }
  return cycles;
}

/**
 * @param {string[]} cycle
 * @returns {string[]}
 */
function rotateToSmallest(cycle) {
  let best = 0;
  for (let i = 1; i < cycle.length; i++) {
    if ((cycle[i] ?? '') < (cycle[best] ?? '')) best = i;
  }
  return [...cycle.slice(best), ...cycle.slice(0, best)];
}

/**
 * @param {string} dir
 * @returns {string[]}
 */
function sourceFiles(dir) {
  /** @type {string[]} */
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (SOURCE.test(entry.name)) files.push(path);
  }
  return files.sort();
}

/**
 * The import graph of every source file under `root`, and the relative imports that resolve to
 * no file (the graph would be incomplete without them).
 * @param {string} root
 * @returns {{ graph: Map<string, string[]>, unresolved: { file: string, specifier: string }[] }}
 */
export function buildGraph(root) {
  const isFile = (/** @type {string} */ path) => existsSync(path) && statSync(path).isFile();
  /** @type {Map<string, string[]>} */
  const graph = new Map();
  /** @type {{ file: string, specifier: string }[]} */
  const unresolved = [];
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const code = file.endsWith('.svelte') ? scriptBlocks(text) : text;
    /** @type {string[]} */
    const targets = [];
    for (const specifier of parseImports(code)) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../')) continue;
      const target = resolveImport(file, specifier, isFile);
      if (target === null) unresolved.push({ file, specifier });
      else if (SOURCE.test(target) && !targets.includes(target)) targets.push(target);
    }
    graph.set(file, targets);
  }
  return { graph, unresolved };
}

function main() {
  const ui = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const root = resolve(ui, process.argv[2] ?? 'src');
  const { graph, unresolved } = buildGraph(root);
  const name = (/** @type {string} */ path) => relative(ui, path);
  for (const { file, specifier } of unresolved) {
    console.error(`check-cycles: ${name(file)}: cannot resolve '${specifier}'`);
  }
  const cycles = findCycles(graph);
  for (const cycle of cycles) console.error(`check-cycles: import cycle: ${cycle.map(name).join(' → ')}`);
  if (cycles.length > 0 || unresolved.length > 0) {
    console.error(`check-cycles: ${cycles.length} cycle(s), ${unresolved.length} unresolved import(s)`);
    process.exit(1);
  }
  console.log(`check-cycles: no import cycles among ${graph.size} files`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
