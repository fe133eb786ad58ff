/**
 * `fasternet bench startup [--runs N] [--json OUT.json]`: how long `fasternet --version` and `--help` take, by
 * the route a user starts them, against two floors measured in the same run: `node -e 0` (Node's own start-up)
 * and `npx noop-bin`, a package whose bin only prints a line, installed in the same consumer project (npm exec's
 * own start-up, the least any `npx <bin>` can take). Registered as `bench startup` under bench/command.ts.
 *
 * Routes: the compiled CLI run by node in this package's folder; in a temporary consumer project that installed
 * this package by path (`npm install --offline <package folder>`, a link, as the README's "from a clone"), the
 * linked bin `node_modules/.bin/fasternet` (what an npm script, or a global install on PATH, runs) and `npx
 * fasternet`; and, in a clone, `npx fasternet` in the clone itself, which npm handles differently (the
 * package's own bin: npm exec links the folder into its npx cache and reads both dependency trees first).
 * Runs are interleaved (one of each command per round, after a warm-up round) so that other load on the
 * machine spreads over every row; each row is the median of --runs rounds.
 */
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { positiveInt } from '../core/options.ts';
import { packageRoot, packageVersion } from '../core/package.ts';
import { STDOUT, checkOutputFile, writeOutput } from '../core/output.ts';
import { benchCommand } from './command.ts';

export interface StartupRow {
  /** The command line as a user types it. */
  command: string;
  /** Where it runs: this package's folder, or the temporary consumer project. */
  where: 'package' | 'consumer';
  ms_median: number;
  ms_min: number;
  /** ms_median over the median of `npx noop-bin` (npm exec's own start-up). */
  x_npx_floor: number;
  /** ms_median minus the median of `node -e 0`: what the command costs beyond starting Node. */
  ms_over_node: number;
}

interface StartupCase {
  command: string;
  where: StartupRow['where'];
  file: string;
  args: string[];
  /** What stdout must hold, so that a route that runs something else (or fails quietly) is caught. */
  expect: (stdout: string) => boolean;
}

/**
 * This process's environment as a user's shell has it: without the variables `npm run` adds (npm_config_*
 * would change what a child npx does) and without node_modules/.bin folders on PATH.
 */
export function userShellEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  env.PATH = (process.env.PATH ?? '').split(delimiter).filter((p) => !p.includes('node_modules')).join(delimiter);
  delete env.JOB_COMPLETION_INDEX;
  delete env.SLURM_ARRAY_TASK_ID;
  return { ...env, ...extra };
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** A consumer project in `dir` with this package (linked) and a no-op bin package installed. */
function makeConsumer(dir: string, root: string, env: NodeJS.ProcessEnv): void {
  const noop = join(dir, 'noop-bin');
  mkdirSync(noop);
  writeFileSync(join(noop, 'package.json'), JSON.stringify({ name: 'noop-bin', version: '1.0.0', bin: { 'noop-bin': 'cli.js' } }));
  writeFileSync(join(noop, 'cli.js'), '#!/usr/bin/env node\nconsole.log("noop");\n', { mode: 0o755 });
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
  const r = spawnSync('npm', ['install', '--offline', '--no-audit', '--no-fund', root, noop], { cwd: app, env: { ...env, ONNXRUNTIME_NODE_INSTALL: 'skip' }, encoding: 'utf8' });
  if (r.status !== 0) throw new UserError(`bench startup: \`npm install --offline ${root}\` into a temporary project failed: ${(r.stderr || String(r.error)).trim().split('\n').at(-1)}`);
}

export interface BenchStartupOptions {
  runs?: number;
  /** Where the table goes (default stdout). */
  stream?: NodeJS.WritableStream;
}

/** Times every route (see the file comment); returns the rows, in the printed order. */
export function runBenchStartup(o: BenchStartupOptions = {}): StartupRow[] {
  const runs = o.runs ?? 10;
  const stream = o.stream ?? process.stdout;
  const root = packageRoot();
  const main = join(root, 'dist', 'cli', 'main.js');
  if (!existsSync(main)) throw new UserError(`bench startup times the compiled CLI, and ${main} is missing: run \`npm run build\` first`);
  const version = packageVersion();
  const isVersion = (s: string) => s.trim() === version;
  const isHelp = (s: string) => s.startsWith('Usage: fasternet ') && s.includes('Exit codes');
  const env = userShellEnv();
  const dir = mkdtempSync(join(tmpdir(), 'fasternet-startup-'));
  try {
    makeConsumer(dir, root, env);
    const app = join(dir, 'app');
    const cases: StartupCase[] = [
      { command: 'node -e 0', where: 'package', file: process.execPath, args: ['-e', '0'], expect: (s) => s === '' },
      { command: 'node dist/cli/main.js --version', where: 'package', file: process.execPath, args: [main, '--version'], expect: isVersion },
      { command: 'node dist/cli/main.js --help', where: 'package', file: process.execPath, args: [main, '--help'], expect: isHelp },
      { command: 'node_modules/.bin/fasternet --version', where: 'consumer', file: join(app, 'node_modules', '.bin', 'fasternet'), args: ['--version'], expect: isVersion },
      // npm's own start-up without exec's modules (arborist, pacote), which every `npx` loads before it looks for a bin.
      { command: 'npm --version', where: 'consumer', file: 'npm', args: ['--version'], expect: (s) => /^\d+\.\d+\.\d+/.test(s) },
      { command: 'npx noop-bin', where: 'consumer', file: 'npx', args: ['noop-bin'], expect: (s) => s === 'noop\n' },
      { command: 'npx fasternet --version', where: 'consumer', file: 'npx', args: ['fasternet', '--version'], expect: isVersion },
      { command: 'npx fasternet --help', where: 'consumer', file: 'npx', args: ['fasternet', '--help'], expect: isHelp },
    ];
    // In a clone (not an installed copy), npx of the package's own bin, as the README's first command does.
    if (existsSync(join(root, '.git'))) cases.push({ command: 'npx fasternet --version', where: 'package', file: 'npx', args: ['fasternet', '--version'], expect: isVersion });
    const times: number[][] = cases.map(() => []);
    for (let round = 0; round <= runs; round++) {
      cases.forEach((c, k) => {
        const t0 = process.hrtime.bigint();
        const r = spawnSync(c.file, c.args, { cwd: c.where === 'consumer' ? app : root, env, encoding: 'utf8' });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r.status !== 0 || !c.expect(r.stdout)) {
          throw new UserError(`bench startup: \`${c.command}\` (in the ${c.where} folder) failed or printed something else: exit ${r.status}, ${JSON.stringify((r.stdout + r.stderr).slice(0, 200))}`);
        }
        if (round > 0) times[k].push(ms); // round 0 warms the file cache
      });
    }
    const med = times.map(median);
    const node = med[0];
    const floor = med[cases.findIndex((c) => c.command === 'npx noop-bin')];
    const rows = cases.map((c, k): StartupRow => ({
      command: c.command, where: c.where, ms_median: med[k], ms_min: Math.min(...times[k]), x_npx_floor: med[k] / floor, ms_over_node: med[k] - node,
    }));
    stream.write(`start-up, median of ${runs} interleaved runs (after a warm-up round); package: ${root}, consumer: a temporary project that installed it\n`);
    stream.write(`${'command'.padEnd(40)} ${'where'.padEnd(9)} ${'median ms'.padStart(10)} ${'min ms'.padStart(8)} ${'x npx floor'.padStart(12)} ${'- node -e 0'.padStart(12)}\n`);
    for (const r of rows) {
      stream.write(`${r.command.padEnd(40)} ${r.where.padEnd(9)} ${r.ms_median.toFixed(1).padStart(10)} ${r.ms_min.toFixed(1).padStart(8)} ${`${r.x_npx_floor.toFixed(2)}x`.padStart(12)} ${r.ms_over_node.toFixed(1).padStart(12)}\n`);
    }
    stream.write(`npx floor (npx noop-bin): ${floor.toFixed(1)} ms, of which node -e 0: ${node.toFixed(1)} ms\n`);
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function register(program: Command): void {
  benchCommand(program).command('startup')
    .description('time `fasternet --version`/`--help` start-up: node on the compiled CLI, the installed bin and npx, against `node -e 0` and npx of a no-op bin')
    .option('--runs <n>', 'timed rounds (each runs every command once; the median is reported)', '10')
    .option('--json <file>', 'write [{"command", "where", "ms_median", "ms_min", "x_npx_floor", "ms_over_node"}] here (- for stdout)')
    .action((opts: { runs: string; json?: string }) => {
      checkOutputFile('--json', opts.json);
      const rows = runBenchStartup({ runs: positiveInt('--runs', opts.runs, 1000), stream: opts.json === STDOUT ? process.stderr : process.stdout });
      if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(rows, null, 1)}\n`);
    });
}
