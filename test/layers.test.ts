/**
 * The layering rule: a folder imports only folders below it in LAYERS (and itself). Read from the sources'
 * import specifiers, so a new upward import fails here before a reader meets it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** Bottom first. The library is everything up to api/; bench/ and cli/ sit on top and nothing imports them. */
export const LAYERS = [
  'core', 'runtime', 'checkpoint', 'image', 'postprocess', 'backbones', 'necks', 'heads', 'convert', 'eval',
  'datasets', 'api', 'bench', 'cli',
] as const;
/** index.ts (the package root) exports the library: it may import any layer up to api/. */
const ROOT_FILE_RANK = LAYERS.indexOf('api');

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)(['"])(\.{1,2}\/[^'"]*)\1/g;

export interface Violation { file: string; imports: string; why: string }

function rankOf(folder: string): number {
  return (LAYERS as readonly string[]).indexOf(folder);
}

/** Upward or unknown imports in one source text; `file` is relative to the repository root. */
export function layerViolations(file: string, source: string): Violation[] {
  const top = file.includes('/') ? file.slice(0, file.indexOf('/')) : '';
  const own = top === '' ? ROOT_FILE_RANK : rankOf(top);
  const out: Violation[] = [];
  for (const m of source.matchAll(SPECIFIER)) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), m[2]));
    if (target.startsWith('..')) { out.push({ file, imports: m[2], why: 'outside the package' }); continue; }
    const folder = target.includes('/') ? target.slice(0, target.indexOf('/')) : '';
    if (folder === top) continue;
    const rank = rankOf(folder);
    if (folder === 'models') continue; // data files (the bundled model), not code
    if (rank < 0) out.push({ file, imports: m[2], why: `"${folder || target}" is not a layer` });
    else if (rank > own) out.push({ file, imports: m[2], why: `${folder}/ is above ${top || 'index.ts'}` });
  }
  return out;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|mts|cts|js|mjs)$/.test(e.name) ? [join(dir, e.name)] : []);
}

describe('layers', () => {
  it('no source file imports a folder above its own', () => {
    const files = [...LAYERS.flatMap((l) => sources(l)), 'index.ts'];
    expect(files.length).toBeGreaterThan(60);
    const bad = files.flatMap((f) => layerViolations(f, readFileSync(join(ROOT, f), 'utf8')));
    expect(bad).toEqual([]);
  });

  it('catches an upward import, a dynamic one, and one into a folder that is not a layer', () => {
    expect(layerViolations('heads/rpn.ts', "import { detect } from '../api/detect.ts';")).toEqual([
      { file: 'heads/rpn.ts', imports: '../api/detect.ts', why: 'api/ is above heads' },
    ]);
    expect(layerViolations('core/errors.ts', "const m = await import('../cli/main.ts');")[0]?.why).toBe('cli/ is above core');
    expect(layerViolations('eval/coco.ts', "import x from '../scripts/tool.ts';")[0]?.why).toBe('"scripts" is not a layer');
    expect(layerViolations('index.ts', "export { run } from './bench/detect.ts';")[0]?.why).toBe('bench/ is above index.ts');
    // Downward and same-folder imports are fine.
    expect(layerViolations('heads/rpn.ts', "import { nms } from '../postprocess/nms.ts';\nimport './config.ts';")).toEqual([]);
  });
});
