/**
 * Where this package's own files are, the same whether it runs from its TypeScript sources (tsx, vitest) or
 * compiled to dist/: the bundled model, the class-name data, the version and the benchmarks' Python scripts
 * are found from the package root, which is one folder up from the sources and two from dist/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder holding this package's package.json. */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'fasternet') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`fasternet's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** A file of the package, by its path from the package root (e.g. 'models/fasternet_t0_canvases.onnx'). */
export function packageFile(path: string): string {
  return join(packageRoot(), path);
}

/** The `version` of package.json. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(packageFile('package.json'), 'utf8')) as { version: string }).version;
}
