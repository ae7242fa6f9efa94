import { beforeEach, describe, expect, it, vi } from 'vitest';
import {
  LEVELS,
  defaultImportLevel,
  emptyTally,
  failedNames,
  fileNameOf,
  formatPlace,
  highlight,
  levelKey,
  levelRank,
  levelsUpTo,
  openDocument,
  placeOf,
  progressLabel,
  progressPercent,
  tallyOutcome,
  type FileOutcome,
  type ImportProgress,
  type Segment,
} from './documents';
import { makeTranslator } from './i18n';
import { toasts } from './toasts.svelte';

const t = makeTranslator('en');
const tKo = makeTranslator('ko');

/** The highlighted parts only. */
const hits = (segments: Segment[]) => segments.filter((s) => s.hit).map((s) => s.text);
const joined = (segments: Segment[]) => segments.map((s) => s.text).join('');

beforeEach(() => {
  toasts.items = [];
});

describe('highlight', () => {
  it('marks every case-insensitive occurrence and keeps the original text and case', () => {
    const text = 'Budget review: the BUDGET grew; budgets are due.';
    const out = highlight(text, ['budget']);
    expect(joined(out)).toBe(text);
    expect(hits(out)).toEqual(['Budget', 'BUDGET', 'budget']);
    expect(out[0]).toEqual({ text: 'Budget', hit: true });
    expect(out[1]).toEqual({ text: ' review: the ', hit: false });
  });

  it('returns plain text segments, never markup, even when the passage holds HTML', () => {
    const text = '<script>alert(1)</script> <b>report</b> &amp;';
    const out = highlight(text, ['report', 'script']);
    expect(joined(out)).toBe(text);
    expect(hits(out)).toEqual(['script', 'script', 'report']);
    for (const segment of out) expect(Object.keys(segment).sort()).toEqual(['hit', 'text']);
    expect(out.some((s) => s.text.includes('<mark>'))).toBe(false);
  });

  it('handles Korean terms inside longer words (particles attached)', () => {
    const out = highlight('보고서를 검토했고, 분기 보고서에 매출이 있습니다.', ['보고서', '매출']);
    expect(hits(out)).toEqual(['보고서', '보고서', '매출']);
    expect(out[0]).toEqual({ text: '보고서', hit: true });
    expect(out[1]).toEqual({ text: '를 검토했고, 분기 ', hit: false });
  });

  it('treats regex special characters in terms literally', () => {
    expect(hits(highlight('We use C++ and C# (mostly).', ['c++', '(', 'c#']))).toEqual(['C++', 'C#', '(']);
    expect(hits(highlight('a.b axb', ['a.b']))).toEqual(['a.b']);
    expect(hits(highlight('cost $5 ^up [x] {y} a|b \\ /', ['$5', '^up', '[x]', '{y}', 'a|b', '\\', '/']))).toEqual([
      '$5', '^up', '[x]', '{y}', 'a|b', '\\', '/',
    ]);
    expect(hits(highlight('a-b', ['-']))).toEqual(['-']);
  });

  it('merges overlapping and adjacent matches into one highlight', () => {
    expect(hits(highlight('the database', ['data', 'database', 'base']))).toEqual(['database']);
    expect(hits(highlight('abc', ['ab', 'bc']))).toEqual(['abc']);
    expect(hits(highlight('xaaaax', ['aaa']))).toEqual(['aaaa']);
    expect(hits(highlight('foobar', ['foo', 'bar']))).toEqual(['foobar']);
  });

  it('ignores blank terms and returns the whole text unmarked without matches', () => {
    expect(highlight('Nothing here', ['', '  ', 'zzz'])).toEqual([{ text: 'Nothing here', hit: false }]);
    expect(highlight('Nothing here', [])).toEqual([{ text: 'Nothing here', hit: false }]);
    expect(highlight('', ['a'])).toEqual([]);
  });

  it('keeps characters outside the BMP whole', () => {
    const out = highlight('📊 매출 📊', ['📊']);
    expect(joined(out)).toBe('📊 매출 📊');
    expect(hits(out)).toEqual(['📊', '📊']);
  });
});

function progress(overrides: Partial<ImportProgress> = {}): ImportProgress {
  return {
    job_id: 1, files_total: 4, files_done: 1, chunks_done: 12, current_chunks_done: 0, current_chunks_total: 0,
    current: '/docs/a.pdf', finished_file: null, done: false, ...overrides,
  };
}

describe('import progress', () => {
  it('is the share of files done, rounded and bounded; unknown without a total', () => {
    expect(progressPercent(progress())).toBe(25);
    expect(progressPercent(progress({ files_done: 2, files_total: 3 }))).toBe(67);
    expect(progressPercent(progress({ files_done: 4 }))).toBe(100);
    expect(progressPercent(progress({ files_done: 9 }))).toBe(100);
    expect(progressPercent(progress({ files_total: 0, files_done: 0 }))).toBeNull();
    expect(progressPercent(null)).toBeNull();
  });

  it('says files done of the total and passages, then that search is being prepared', () => {
    const line = progressLabel(progress());
    expect(t(line.key, line.vars)).toBe('Importing 1 of 4 files · 12 passages');
    expect(tKo(line.key, line.vars)).toBe('파일 4개 중 1개 가져옴 · 구절 12개');
    const done = progressLabel(progress({ files_done: 4, chunks_done: 50, done: true }));
    expect(t(done.key, done.vars)).toBe('Preparing search for 4 files · 50 passages…');
    expect(progressLabel(null).key).toBe('documents.progress.starting');
  });

  it('names the scanned page OCR is reading in the current file', () => {
    const line = progressLabel(progress({ current_ocr_pages_done: 2, current_ocr_pages_total: 7 }));
    expect(t(line.key, line.vars)).toBe('Importing 1 of 4 files · reading scanned page 3 of 7 (OCR)');
    expect(tKo(line.key, line.vars)).toBe('파일 4개 중 1개 가져옴 · 스캔한 쪽 7쪽 중 3쪽 읽는 중 (OCR)');
  });

  it('counts the share of the current file already stored, so the bar moves inside a file', () => {
    // 1 of 4 files done, and half of the second file's 200 passages: (1 + 0.5) / 4.
    expect(progressPercent(progress({ current_chunks_done: 100, current_chunks_total: 200 }))).toBe(38);
    expect(progressPercent(progress({ files_done: 0, files_total: 1, current_chunks_done: 1, current_chunks_total: 3 }))).toBe(33);
    expect(progressPercent(progress({ files_done: 0, files_total: 1, current_chunks_done: 0, current_chunks_total: 50 }))).toBe(0);
    // Not yet cut into passages: only whole files count.
    expect(progressPercent(progress({ current_chunks_done: 0, current_chunks_total: 0 }))).toBe(25);
    // A count past the total never takes the bar beyond the next file, nor past 100.
    expect(progressPercent(progress({ current_chunks_done: 9, current_chunks_total: 3 }))).toBe(50);
    expect(progressPercent(progress({ files_done: 4, current_chunks_done: 3, current_chunks_total: 3 }))).toBe(100);
    expect(progressPercent(progress({ files_total: 0, files_done: 0, current_chunks_done: 1, current_chunks_total: 2 }))).toBeNull();
  });

  it('says how far the current file is once it has been cut into passages', () => {
    const line = progressLabel(progress({ current_chunks_done: 40, current_chunks_total: 120 }));
    expect(line.key).toBe('documents.progress.file_chunks');
    expect(line.vars).toMatchObject({ done: 1, total: 4, chunk_done: 40, chunk_total: 120 });
    expect(t(line.key, line.vars)).toBe('Importing 1 of 4 files · this file: 40 of 120 passages');
    expect(tKo(line.key, line.vars)).toBe('파일 4개 중 1개 가져옴 · 이 파일: 구절 120개 중 40개');
    // Before the file is cut up, and once the job is done, the plain lines stay.
    expect(progressLabel(progress({ current_chunks_done: 0, current_chunks_total: 0 })).key).toBe('documents.progress.files');
    expect(progressLabel(progress({ done: true, current_chunks_done: 5, current_chunks_total: 9 })).key).toBe(
      'documents.progress.finishing',
    );
  });

  it('names files from Unix and Windows paths', () => {
    expect(fileNameOf('/home/kim/docs/report.pdf')).toBe('report.pdf');
    expect(fileNameOf('C:\\Users\\kim\\보고서.docx')).toBe('보고서.docx');
    expect(fileNameOf('/home/kim/folder/')).toBe('folder');
  });

  it('tallies outcomes and lists failed files for the summary', () => {
    const outcome = (path: string, status: FileOutcome['status']): FileOutcome => ({
      path, status, chunks: status === 'failed' ? 0 : 3, error_code: status === 'failed' ? 'document_encrypted' : null, error: null,
    });
    const all = [
      outcome('/a.pdf', 'added'), outcome('/b.pdf', 'failed'), outcome('/c.md', 'unchanged'),
      outcome('/d.docx', 'failed'), outcome('/e.txt', 'replaced'), outcome('/f.csv', 'failed'), outcome('/g.csv', 'failed'),
    ];
    const tally = all.reduce(tallyOutcome, emptyTally());
    expect(tally).toMatchObject({ added: 1, replaced: 1, unchanged: 1 });
    expect(tally.failed.map((f) => f.path)).toEqual(['/b.pdf', '/d.docx', '/f.csv', '/g.csv']);
    expect(failedNames(tally.failed)).toBe('b.pdf, d.docx, f.csv +1');
    expect(failedNames(tally.failed.slice(0, 2))).toBe('b.pdf, d.docx');
  });
});

describe('places', () => {
  it('shows the page, else the section, else only the file', () => {
    expect(formatPlace(t, { file_name: 'report.pdf', page: 2, section: 'Intro' })).toBe('report.pdf · p. 2');
    expect(formatPlace(tKo, { file_name: 'report.pdf', page: 2, section: null })).toBe('report.pdf · 2쪽');
    expect(formatPlace(t, { file_name: 'notes.md', page: null, section: 'Budget 2025' })).toBe('notes.md · Budget 2025');
    expect(formatPlace(t, { file_name: 'a.txt', page: null, section: '  ' })).toBe('a.txt');
    expect(placeOf(t, { page: null, section: null })).toBeNull();
  });
});

describe('access levels', () => {
  it('are ordered low to high and limited by a clearance', () => {
    expect(LEVELS.map(levelRank)).toEqual([0, 1, 2, 3]);
    expect(levelsUpTo('public')).toEqual(['public']);
    expect(levelsUpTo('confidential')).toEqual(['public', 'internal', 'confidential']);
    expect(levelsUpTo('restricted')).toEqual(LEVELS);
  });

  it('default imports to internal, or lower when the clearance is lower', () => {
    expect(defaultImportLevel('restricted')).toBe('internal');
    expect(defaultImportLevel('internal')).toBe('internal');
    expect(defaultImportLevel('public')).toBe('public');
  });

  it('have labels in both languages', () => {
    expect(LEVELS.map((l) => t(levelKey(l)))).toEqual(['Public', 'Internal', 'Confidential', 'Restricted']);
    expect(LEVELS.map((l) => tKo(levelKey(l)))).toEqual(['공개', '내부용', '대외비', '극비']);
  });
});

describe('openDocument', () => {
  it('opens at the page and says nothing when the viewer went there', async () => {
    const api = { open: vi.fn(() => Promise.resolve({ program: 'evince', at_page: true })) };
    expect(await openDocument(api, 4, 2)).toBe(true);
    expect(api.open).toHaveBeenCalledWith(4, 2);
    expect(toasts.items).toEqual([]);
  });

  it('tells which page to go to when the viewer could not jump there', async () => {
    const api = { open: vi.fn(() => Promise.resolve({ program: 'xdg-open', at_page: false })) };
    await openDocument(api, 4, 7);
    expect(toasts.items[0]).toMatchObject({ kind: 'info', key: 'documents.opened_no_page', vars: { program: 'xdg-open', page: 7 } });
    toasts.items = [];
    await openDocument(api, 4, null);
    expect(toasts.items).toEqual([]);
  });

  it('turns a failure into a red toast with the mapped message', async () => {
    const api = { open: vi.fn(() => Promise.reject({ code: 'open_failed', message: '/d/a.pdf: not found' })) };
    expect(await openDocument(api, 4, null)).toBe(false);
    expect(toasts.items[0]).toMatchObject({
      kind: 'error', key: 'documents.error.open_failed', code: 'open_failed', detail: '/d/a.pdf: not found',
    });
  });
});
