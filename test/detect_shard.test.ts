/**
 * `fasternet detect` beyond a list of files: folders (sorted, --recursive), --gt image ids, the --jsonl stream
 * with --resume, --shard I/N (auto from the scheduler's index) and `eval --results A B C` merging the shards.
 * Three shards run as separate processes, one killed (SIGKILL) after its first image and resumed; the merged
 * results file is byte-identical to one unsharded run's, and so are the evaluation stats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandInputs } from '../cli/detect_inputs.ts';
import { parseShard, shardOf } from '../core/options.ts';
import { cli } from './helpers/cli.ts';

const GT = 'data/canvases_val/annotations.json';
const MAIN = ['--import', 'tsx', 'cli/main.ts'];

describe('detect over folders, shards and streams', () => {
  let dir: string;
  let imgs: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'detect-shard-'));
    imgs = join(dir, 'imgs');
    mkdirSync(join(imgs, 'sub'), { recursive: true });
    // Seven val images; the seventh in a subfolder, a non-image file alongside.
    for (let i = 1; i <= 6; i++) copyFileSync(`data/canvases_val/images/00000${i}.png`, join(imgs, `00000${i}.png`));
    copyFileSync('data/canvases_val/images/000007.png', join(imgs, 'sub', '000007.png'));
    writeFileSync(join(imgs, 'notes.txt'), 'not an image\n');
    mkdirSync(join(dir, 'empty'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('folders: images sorted by name, subfolders with --recursive; shards take every N-th', () => {
    const names = (files: string[]) => files.map((f) => f.slice(imgs.length + 1));
    expect(names(expandInputs([imgs]))).toEqual(['000001.png', '000002.png', '000003.png', '000004.png', '000005.png', '000006.png']);
    expect(names(expandInputs([imgs], true)).at(-1)).toBe('sub/000007.png');
    expect(() => expandInputs([join(dir, 'empty')])).toThrow(/empty holds no images \(\.jpg .*; --recursive also looks in its subfolders$/);
    expect(shardOf([0, 1, 2, 3, 4, 5, 6], parseShard('1/3'))).toEqual([1, 4]);
    expect(parseShard('auto/4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('auto/4', { SLURM_ARRAY_TASK_ID: '2' })).toEqual({ index: 2, count: 4 });
  });

  it('bad values: one line, exit 2, nothing written', async () => {
    const out = join(dir, 'o');
    const cases: Array<[string[], string, NodeJS.ProcessEnv?]> = [
      [[imgs, '--shard', '3/2'], 'fasternet: --shard must be I/N with 0 <= I < N (I may be auto), got "3/2"'],
      [[imgs, '--shard', 'x'], 'fasternet: --shard must be I/N with 0 <= I < N (I may be auto), got "x"'],
      [[imgs, '--shard', 'auto/2'], 'fasternet: --shard auto/2: neither JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID is set; give the index, e.g. --shard 0/2'],
      [[imgs, '--shard', 'auto/2'], 'fasternet: --shard auto/2 must be I/N with 0 <= I < N (I may be auto), got "auto/2"'.replace(' auto/2 must', ' must'), { JOB_COMPLETION_INDEX: '5' }],
      [[imgs, '--jsonl', join(dir, 'missing', 's.jsonl')], `fasternet: --jsonl ${join(dir, 'missing', 's.jsonl')}: folder ${join(dir, 'missing')} does not exist`],
      [[join(dir, 'empty')], `fasternet: ${join(dir, 'empty')} holds no images (.jpg .jpeg .png .webp .tif .tiff .gif .avif .bmp); --recursive also looks in its subfolders`],
      [[imgs, '--resume'], 'fasternet: --resume needs --jsonl FILE (the stream of the run to continue)'],
    ];
    const base = { ...process.env };
    delete base.JOB_COMPLETION_INDEX;
    delete base.SLURM_ARRAY_TASK_ID;
    for (const [args, line, env] of cases) {
      const r = await cli(['detect', ...args, '--out', out, '--json', join(dir, 'r.json')], { ...base, ...env });
      expect([r.code, r.stderr.trim(), r.stdout], args.join(' ')).toEqual([2, line, '']);
    }
    expect(readdirSync(dir).sort()).toEqual(['empty', 'imgs']);
  }, 120_000);

  it('Ctrl-C during detect --jsonl: exit 130, the finished images kept, --resume completes', async () => {
    const stream = join(dir, 'int.jsonl');
    const args = ['detect', imgs, '--jsonl', stream, '--json', join(dir, 'int.json')];
    const child = spawn(process.execPath, [...MAIN, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (stdout.includes('instances') && !child.killed) child.kill('SIGINT');
    });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(130);
    expect(stderr).toContain(`fasternet: interrupted; rerun the same command with --resume to continue (${stream} keeps the finished images)`);
    expect(existsSync(join(dir, 'int.json'))).toBe(false);
    const kept = readFileSync(stream, 'utf8').trim().split('\n').length - 1;
    expect(kept).toBeGreaterThanOrEqual(1);
    const r = await cli([...args, '--resume']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(6 - kept);
    expect(readFileSync(stream, 'utf8').trim().split('\n')).toHaveLength(7);
    rmSync(stream);
    rmSync(join(dir, 'int.json'));
  }, 120_000);

  it('3 shards in 3 processes (one killed and resumed) merge into exactly the unsharded run', async () => {
    const common = [imgs, '--gt', GT, '--score-thr', '0.05'];
    const full = await cli(['detect', ...common, '--json', join(dir, 'full.json'), '--quiet']);
    expect([full.code, full.stderr]).toEqual([0, '']);
    const fullResults = JSON.parse(readFileSync(join(dir, 'full.json'), 'utf8')) as Array<{ image_id: number; file?: string }>;
    expect([...new Set(fullResults.map((e) => e.image_id))]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(fullResults.every((e) => e.file === undefined)).toBe(true);

    const shardArgs = (i: number) => ['detect', ...common, '--shard', `${i}/3`, '--jsonl', join(dir, `s${i}.jsonl`), '--json', join(dir, `s${i}.json`)];
    // Shard 1 (images 2 and 5) is killed as soon as its first image is on disk.
    const killed = new Promise<string | null>((resolve) => {
      const child = spawn(process.execPath, [...MAIN, ...shardArgs(1)]);
      let stdout = '';
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
        if (stdout.includes('instances') && !child.killed) child.kill('SIGKILL');
      });
      child.on('exit', (_code, signal) => resolve(signal));
    });
    const [s0, s2, signal] = await Promise.all([cli(shardArgs(0)), cli(shardArgs(2)), killed]);
    expect([s0.code, s2.code, signal]).toEqual([0, 0, 'SIGKILL']);
    expect(existsSync(join(dir, 's1.json'))).toBe(false);
    const again = await cli(shardArgs(1));
    expect((await cli([...shardArgs(1).slice(0, -2), '--json', join(dir, 'x.json')])).stderr).toMatch(/holds an earlier run: rerun with --resume/);
    expect(again.code).toBe(2);
    const resumed = await cli([...shardArgs(1), '--resume']);
    expect(resumed.code).toBe(0);
    // Only the image the killed run had not finished was run again.
    expect(resumed.stdout.trim().split('\n')).toEqual([expect.stringMatching(/000005\.png: \d+ instances$/)]);
    const changed = await cli([...shardArgs(1), '--resume', '--score-thr', '0.5'].filter((a, k, all) => !(a === '0.05' && all[k - 1] === '--score-thr')));
    expect([changed.code, changed.stderr.trim()]).toEqual([2, expect.stringMatching(/cannot --resume .*s1\.jsonl: it was made with other settings \(score_thr was 0\.05, now 0\.5\)/)]);

    const shards = [0, 1, 2].map((i) => join(dir, `s${i}.json`));
    const merged = await cli(['eval', '--gt', GT, '--results', ...shards, '--out', join(dir, 'merged.json'), '--iou-type', 'bbox,segm', '--json', join(dir, 'm_stats.json')]);
    expect(merged.code).toBe(0);
    expect(merged.stderr).toMatch(/244 of 250 GT images have no entry in any --results file \(ids 7, 8, 9,/);
    expect(readFileSync(join(dir, 'merged.json'))).toEqual(readFileSync(join(dir, 'full.json')));
    const one = await cli(['eval', '--gt', GT, '--results', join(dir, 'full.json'), '--iou-type', 'bbox,segm', '--json', join(dir, 'f_stats.json')]);
    expect(one.code).toBe(0);
    const stats = (f: string) => { const j = JSON.parse(readFileSync(join(dir, f), 'utf8')); delete j.results; return j; };
    expect(stats('m_stats.json')).toEqual(stats('f_stats.json'));
    expect(stats('f_stats.json').segm.stats.AP).toBeGreaterThan(0);

    const overlap = await cli(['eval', '--gt', GT, '--results', shards[0], join(dir, 'full.json')]);
    expect([overlap.code, overlap.stderr.trim()]).toEqual([2, `fasternet: --results ${shards[0]} and ${join(dir, 'full.json')} both hold image 1: the shards overlap`]);
  }, 300_000);

  it('eval --model --shard: two shards merged by eval --results equal the unsharded run', async () => {
    const model = (i: number | 'full') => ['eval', '--gt', GT, '--images', 'data/canvases_val/images', '--model', 'models/fasternet_t0_canvases.onnx',
      '--limit', '4', '--quiet', '--out', join(dir, `e${i}.json`), ...(i === 'full' ? [] : ['--shard', `${i}/2`])];
    const runs = await Promise.all([cli(model(0)), cli(model(1)), cli(model('full'))]);
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
    expect(runs[0].stdout).toMatch(/Evaluate annotation type \*bbox\* \(\d+ detections, 2 images,/);
    const ids = (f: string) => [...new Set((JSON.parse(readFileSync(join(dir, f), 'utf8')) as Array<{ image_id: number }>).map((e) => e.image_id))];
    expect([ids('e0.json'), ids('e1.json'), ids('efull.json')]).toEqual([[1, 3], [2, 4], [1, 2, 3, 4]]);
    const merged = await cli(['eval', '--gt', GT, '--results', join(dir, 'e0.json'), join(dir, 'e1.json'), '--out', join(dir, 'emerged.json'), '--json', join(dir, 'em.json')]);
    const one = await cli(['eval', '--gt', GT, '--results', join(dir, 'efull.json'), '--json', join(dir, 'ef.json')]);
    expect([merged.code, one.code]).toEqual([0, 0]);
    expect(JSON.parse(readFileSync(join(dir, 'emerged.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(dir, 'efull.json'), 'utf8')));
    const stats = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')).bbox.stats;
    expect(stats('em.json')).toEqual(stats('ef.json'));
    const bad = await cli(['eval', '--gt', GT, '--results', join(dir, 'efull.json'), '--shard', '0/2']);
    expect([bad.code, bad.stderr.trim()]).toEqual([2, 'fasternet: --shard needs --model (it splits the images a model runs on)']);
  }, 300_000);
});
