/**
 * Conventions every command shares (cli/main.ts, core/output.ts), checked on the bundled model: `--json -` puts
 * the data alone on stdout and the messages on stderr, `--quiet`, one `detect --score-thr` (0.5) for what is
 * counted and written, `--classes` and `--max-det` agreeing with the library's options, exit codes 0/1/2/130
 * (2 with one line and nothing written for bad option values), `--version` from package.json.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detect, releaseDetectModels, type DetectResult } from '../api/detect.ts';
import { decodeImage } from '../image/decode.ts';
import { cli } from './helpers/cli.ts';

const IMAGE = 'examples/canvas_000001.png';

interface Entry { file: string; category_id: number; bbox: number[]; score: number }

describe('CLI conventions', () => {
  let dir: string;
  let all: DetectResult;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cli-conv-'));
    // What the CLI runs on: the image as viewers show it, every detection the model keeps (0.05).
    all = await detect(await decodeImage(IMAGE, { autoOrient: true }));
  }, 60_000);
  afterAll(async () => {
    await releaseDetectModels();
    rmSync(dir, { recursive: true, force: true });
  });

  it('detect --json -: JSON alone on stdout, the per-image line on stderr; --score-thr 0.5 by default', async () => {
    const r = await cli(['detect', IMAGE, '--json', '-']);
    expect(r.code).toBe(0);
    const entries = JSON.parse(r.stdout) as Entry[];
    const want = all.detections.filter((d) => d.score >= 0.5);
    expect(want.length).toBeGreaterThan(0);
    expect(want.length).toBeLessThan(all.detections.length);
    expect(entries.map((e) => e.score)).toEqual(want.map((d) => d.score));
    expect(r.stderr).toBe(`${IMAGE}: ${want.length} instances\n`);
    const quiet = await cli(['detect', IMAGE, '--json', '-', '--quiet']);
    expect([quiet.code, quiet.stderr, quiet.stdout]).toEqual([0, '', r.stdout]);
  }, 60_000);

  it('every data command takes --quiet; quantize --quiet writes its model and prints nothing', async () => {
    for (const c of ['detect', 'eval', 'classify', 'convert', 'quantize']) {
      expect((await cli([c, '--help'])).stdout).toMatch(/--quiet/);
    }
    const own = mkdtempSync(join(tmpdir(), 'cli-quiet-'));
    try {
      const calib = join(own, 'calib');
      mkdirSync(calib);
      copyFileSync(IMAGE, join(calib, 'a.png'));
      const out = join(own, 'q.int8.onnx');
      const r = await cli(['quantize', 'models/fasternet_t0_canvases.onnx', '--calib', calib, '--method', 'minmax', '--out', out, '--quiet']);
      expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
      expect(statSync(out).size).toBeGreaterThan(1e6);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  }, 120_000);

  it('detect --max-det and --classes select as the library does', async () => {
    const top = await cli(['detect', IMAGE, '--json', '-', '--score-thr', '0.05', '--max-det', '2']);
    expect((JSON.parse(top.stdout) as Entry[]).map((e) => e.score)).toEqual(all.detections.slice(0, 2).map((d) => d.score));
    const name = all.detections[0].labelName;
    const same = all.detections.filter((d) => d.labelName === name);
    const cls = await cli(['detect', IMAGE, '--json', '-', '--score-thr', '0.05', '--classes', name]);
    const entries = JSON.parse(cls.stdout) as Entry[];
    expect(entries.map((e) => e.score)).toEqual(same.map((d) => d.score));
    expect(new Set(entries.map((e) => e.category_id))).toEqual(new Set([all.detections[0].categoryId]));
  }, 60_000);

  it('bad option values: exit 2, one line naming the option, nothing written', async () => {
    const out = join(dir, 'annotated');
    const cases: Array<[string[], RegExp]> = [
      [['--score-thr', '2'], /^fasternet: --score-thr must be a number in \[0, 1\], got "2"$/],
      [['--score-thr', ''], /^fasternet: --score-thr must be a number in \[0, 1\], got ""$/],
      [['--max-det', '0'], /^fasternet: --max-det must be a positive integer, got "0"$/],
      [['--classes', 'a,,b'], /^fasternet: --classes must be comma-separated class names or labels, got "a,,b"$/],
      [['--json', join(dir, 'missing', 'r.json')], /^fasternet: --json .*r\.json: folder .*missing does not exist$/],
      [['--bogus'], /^error: unknown option '--bogus'$/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(['detect', IMAGE, '--out', out, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(message);
      expect(r.stdout).toBe('');
      expect(existsSync(out), args.join(' ')).toBe(false);
    }
    const usage = await cli(['eval', '--gt', 'x.json', '--json', join(dir, 'nope', 'o.json')]);
    expect([usage.code, usage.stderr.trim()]).toEqual([2, `fasternet: --json ${join(dir, 'nope', 'o.json')}: folder ${join(dir, 'nope')} does not exist`]);
    expect(readdirSync(dir)).toEqual([]);
  }, 120_000);

  it('an input that fails: exit 1, the others processed', async () => {
    const r = await cli(['detect', IMAGE, join(dir, 'missing.png'), '--json', '-', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([`fasternet detect: cannot read image ${join(dir, 'missing.png')}: no such file`, 'fasternet detect: 1 of 2 inputs failed']);
    expect((JSON.parse(r.stdout) as Entry[]).length).toBe(all.detections.filter((d) => d.score >= 0.5).length);
  }, 60_000);

  it('--version is package.json\'s; --help lists the commands and the exit codes', async () => {
    const v = await cli(['--version']);
    expect(v.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    const h = await cli(['--help']);
    expect(h.code).toBe(0);
    for (const c of ['detect', 'eval', 'convert', 'classify', 'bench']) expect(h.stdout).toMatch(new RegExp(`\\n  ${c} `));
    expect(h.stdout).toContain('130  interrupted');
    const d = await cli(['detect', '--help']);
    expect(d.stdout).toContain('--score-thr <t>');
    expect(d.stdout).toContain('130  interrupted');
    expect((await cli(['nope'])).code).toBe(2);
  }, 60_000);

  it('Ctrl-C during eval --model: exit 130 with how to resume', async () => {
    const out = join(dir, 'r.json');
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'eval', '--gt', 'data/canvases_val/annotations.json',
      '--images', 'data/canvases_val/images', '--model', 'models/fasternet_t0_canvases.onnx', '--out', out]);
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      // The first progress line comes after the first image: stop there.
      if (/\d+\/250 images/.test(stderr) && !child.killed) child.kill('SIGINT');
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(130);
    expect(stderr).toMatch(/fasternet: interrupted after \d+\/250 images; rerun the same command with --resume/);
    expect(existsSync(`${out}l`)).toBe(true);
    rmSync(`${out}l`);
  }, 120_000);
});
