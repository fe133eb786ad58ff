/**
 * `fasternet bench startup`: every route it times really runs what it names (the bench checks each command's
 * output: the package version, the help text, the no-op line), the floors are the rows they are computed from,
 * and the CLI prints the table. Timings are not asserted (speed goes in the benchmark's own output, not in tests).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Writable } from 'node:stream';
import { runBenchStartup } from '../bench/startup.ts';
import { packageRoot } from '../core/package.ts';

const run = promisify(execFile);

describe('bench startup', () => {
  beforeAll(async () => {
    // It times the compiled CLI, as a user runs it.
    await run('npm', ['run', 'build'], { cwd: packageRoot() });
  }, 120_000);

  it('times every route, each checked to print what it should; the ratios are to the rows named', () => {
    let text = '';
    const sink = new Writable({ write(chunk, _enc, done) { text += String(chunk); done(); } });
    const rows = runBenchStartup({ runs: 1, stream: sink });
    expect(rows.map((r) => `${r.where}: ${r.command}`)).toEqual([
      'package: node -e 0',
      'package: node dist/cli/main.js --version',
      'package: node dist/cli/main.js --help',
      'consumer: node_modules/.bin/fasternet --version',
      'consumer: npm --version',
      'consumer: npx noop-bin',
      'consumer: npx fasternet --version',
      'consumer: npx fasternet --help',
      // In a clone only (npx of the package's own bin).
      ...(existsSync(join(packageRoot(), '.git')) ? ['package: npx fasternet --version'] : []),
    ]);
    const by = (c: string, w = 'consumer') => rows.find((r) => r.command === c && r.where === w)!;
    for (const r of rows) {
      expect(r.ms_median).toBeGreaterThan(0);
      expect(r.ms_min).toBe(r.ms_median); // one run
      expect(r.x_npx_floor).toBeCloseTo(r.ms_median / by('npx noop-bin').ms_median, 12);
      expect(r.ms_over_node).toBeCloseTo(r.ms_median - by('node -e 0', 'package').ms_median, 9);
    }
    expect(by('npx noop-bin').x_npx_floor).toBe(1);
    expect(text.split('\n').filter((l) => / \d+\.\d\dx /.test(l))).toHaveLength(rows.length);
  }, 120_000);

  it('is the `fasternet bench startup` command; a bad --runs is one line and exit 2', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'bench', 'startup', '--runs', '0'], { cwd: packageRoot() }).catch((e: { code: number; stderr: string }) => e);
    expect(['code' in r ? r.code : 0, r.stderr.trim()]).toEqual([2, 'fasternet: --runs must be an integer in [1, 1000], got "0"']);
  });
});
