/**
 * `fasternet bench nms [--boxes 5000] [--runs N] [--json OUT.json]`: times our NMS (torchvision and mmcv
 * flavors, postprocess/nms.ts) on seeded, realistic cases, and where `/usr/bin/python3` has torch, times
 * torchvision.ops.nms / batched_nms on exactly the same boxes in the same run (one thread), prints the ratio and
 * checks that our kept indices equal torchvision's. Registered as `bench nms` under bench/command.ts's `bench`.
 *
 * Cases (n = --boxes):
 *  - rpn: 5 FPN levels of n/5 proposals each (anchor-like sizes per level, clustered on objects), batched
 *    by level at IoU 0.7, as the RPN of Mask R-CNN does;
 *  - box_head: n boxes over 80 classes at IoU 0.5 (class-aware), as the box head's per-class NMS;
 *  - single_0.5 / single_0.7: plain single-class NMS over clustered boxes.
 */
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../core/random.ts';
import { batchedNms, nms, nmsMmcv } from '../postprocess/nms.ts';
import { positiveInt } from '../core/options.ts';
import { STDOUT, checkOutputFile, writeOutput } from '../core/output.ts';
import { benchCommand } from './command.ts';

export interface NmsCase {
  name: string;
  boxes: Float32Array;
  scores: Float32Array;
  /** Class (or level) of each box; null for single-class NMS. */
  idxs: Int32Array | null;
  iou: number;
}

export interface NmsBenchRow {
  case: string;
  boxes: number;
  flavor: 'torchvision' | 'mmcv';
  ms_median: number;
  ms_min: number;
  kept: number;
  torch_ms_median?: number;
  /** Whether our kept indices equal torchvision's (torchvision flavor rows, where torch ran). */
  matches_torch?: boolean;
}

/** Boxes clustered around objects (as detector outputs are), clipped to a 1333x800 image. */
function clustered(
  rnd: () => number, n: number, objects: number, size: (r: () => number) => [number, number], W = 1333, H = 800,
): { boxes: Float32Array; scores: Float32Array; objectOf: Int32Array } {
  const objs = Array.from({ length: objects }, () => {
    const [w, h] = size(rnd);
    return { x: rnd() * W, y: rnd() * H, w, h };
  });
  const boxes = new Float32Array(n * 4), scores = new Float32Array(n), objectOf = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rnd() * objs.length);
    const o = objs[k];
    const cx = o.x + (rnd() - 0.5) * o.w * 0.4, cy = o.y + (rnd() - 0.5) * o.h * 0.4;
    const w = o.w * (0.7 + rnd() * 0.6), h = o.h * (0.7 + rnd() * 0.6);
    boxes[i * 4] = Math.max(0, cx - w / 2);
    boxes[i * 4 + 1] = Math.max(0, cy - h / 2);
    boxes[i * 4 + 2] = Math.min(W, cx + w / 2);
    boxes[i * 4 + 3] = Math.min(H, cy + h / 2);
    // float32 scores in (0, 1) as a sigmoid/softmax gives: ties are possible but rare (tie-heavy inputs are
    // in test/nms_fast.test.ts; with ties the mmcv order takes the slower exact std::sort replay)
    scores[i] = Math.fround(rnd());
    objectOf[i] = k;
  }
  return { boxes, scores, objectOf };
}

/** The seeded benchmark cases for `n` boxes. */
export function nmsCases(n: number, seed = 1): NmsCase[] {
  const rnd = mulberry32(seed);
  const cases: NmsCase[] = [];
  {
    // RPN: per level, proposals of anchor scale 32 * 2^l (aspect 0.5..2, regressed) around objects
    const per = Math.max(1, Math.floor(n / 5));
    const boxes = new Float32Array(per * 5 * 4), scores = new Float32Array(per * 5), idxs = new Int32Array(per * 5);
    for (let l = 0; l < 5; l++) {
      const s = 32 * 2 ** l;
      const c = clustered(rnd, per, Math.max(4, Math.round(per / 12)), (r) => {
        const a = 2 ** (r() * 2 - 1);
        return [s * Math.sqrt(a) * (0.8 + 0.4 * r()), (s / Math.sqrt(a)) * (0.8 + 0.4 * r())];
      });
      boxes.set(c.boxes, l * per * 4);
      scores.set(c.scores, l * per);
      idxs.fill(l, l * per, (l + 1) * per);
    }
    cases.push({ name: 'rpn', boxes, scores, idxs, iou: 0.7 });
  }
  {
    const c = clustered(rnd, n, Math.max(4, Math.round(n / 30)), (r) => [16 + r() ** 2 * 500, 16 + r() ** 2 * 400]);
    const classOfObject = Array.from({ length: n }, () => Math.floor(rnd() * 80));
    const idxs = new Int32Array(n);
    for (let i = 0; i < n; i++) idxs[i] = rnd() < 0.8 ? classOfObject[c.objectOf[i]] : Math.floor(rnd() * 80);
    cases.push({ name: 'box_head', boxes: c.boxes, scores: c.scores, idxs, iou: 0.5 });
  }
  for (const iou of [0.5, 0.7]) {
    const c = clustered(rnd, n, Math.max(4, Math.round(n / 30)), (r) => [16 + r() ** 2 * 500, 16 + r() ** 2 * 400]);
    cases.push({ name: `single_${iou}`, boxes: c.boxes, scores: c.scores, idxs: null, iou });
  }
  return cases;
}

function runOurs(c: NmsCase, flavor: 'torchvision' | 'mmcv'): Int32Array {
  if (c.idxs) return batchedNms(c.boxes, c.scores, c.idxs, c.iou, { flavor });
  return flavor === 'torchvision' ? nms(c.boxes, c.scores, c.iou) : nmsMmcv(c.boxes, c.scores, c.iou);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function timeIt(f: () => Int32Array, runs: number): { median: number; min: number; keep: Int32Array } {
  let keep = f();
  for (let r = 0; r < Math.min(runs, 20); r++) f(); // warm-up: JIT tiers, scratch memory grown
  const ts: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t = performance.now();
    keep = f();
    ts.push(performance.now() - t);
  }
  return { median: median(ts), min: Math.min(...ts), keep };
}

const TORCH_SCRIPT = `
import json, sys, time
import numpy as np
import torch, torchvision
torch.set_num_threads(1)
spec = json.load(open(sys.argv[1]))
out = []
for c in spec['cases']:
    raw = np.fromfile(c['file'], dtype=np.float32)
    n = c['n']
    boxes = torch.from_numpy(raw[:n * 4].reshape(n, 4).copy())
    scores = torch.from_numpy(raw[n * 4:n * 5].copy())
    idxs = torch.from_numpy(np.fromfile(c['idxs'], dtype=np.int32).astype(np.int64)) if c.get('idxs') else None
    f = (lambda: torchvision.ops.batched_nms(boxes, scores, idxs, c['iou'])) if idxs is not None else (lambda: torchvision.ops.nms(boxes, scores, c['iou']))
    keep = f()
    for _ in range(min(spec['runs'], 5)):
        f()
    ts = []
    for _ in range(spec['runs']):
        t = time.perf_counter()
        keep = f()
        ts.append((time.perf_counter() - t) * 1000)
    out.append({'case': c['name'], 'ms_median': float(np.median(ts)), 'keep': keep.tolist()})
print(json.dumps(out))
`;

/** torchvision's timings and kept indices for the cases; null where /usr/bin/python3 has no torch. */
export function benchTorchNms(cases: NmsCase[], runs: number, python = '/usr/bin/python3'): Map<string, { ms: number; keep: number[] }> | null {
  const dir = mkdtempSync(join(tmpdir(), 'fasternet-bench-nms-'));
  try {
    const spec = { runs, cases: cases.map((c, k) => {
      const n = c.scores.length;
      const raw = new Float32Array(n * 5);
      raw.set(c.boxes);
      raw.set(c.scores, n * 4);
      const file = join(dir, `c${k}.f32`);
      writeFileSync(file, raw);
      let idxs: string | undefined;
      if (c.idxs) {
        idxs = join(dir, `c${k}.i32`);
        writeFileSync(idxs, c.idxs);
      }
      return { name: c.name, n, iou: c.iou, file, idxs };
    }) };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    writeFileSync(join(dir, 'bench.py'), TORCH_SCRIPT);
    const r = spawnSync(python, [join(dir, 'bench.py'), join(dir, 'spec.json')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0 || !r.stdout) return null;
    const rows = JSON.parse(r.stdout.trim().split('\n').pop()!) as { case: string; ms_median: number; keep: number[] }[];
    return new Map(rows.map((x) => [x.case, { ms: x.ms_median, keep: x.keep }]));
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface BenchNmsOptions {
  boxes?: number;
  runs?: number;
  seed?: number;
  /** Time torchvision too where /usr/bin/python3 has it. Default true. */
  torch?: boolean;
  python?: string;
  /** Print the table (default true). */
  print?: boolean;
  /** Where the table goes (default stdout; stderr when the JSON goes to stdout). */
  stream?: NodeJS.WritableStream;
}

/** Runs every case for both flavors (and torchvision where available); returns the JSON rows. */
export function runBenchNms(o: BenchNmsOptions = {}): NmsBenchRow[] {
  const n = o.boxes ?? 5000;
  const runs = o.runs ?? 50;
  const print = o.print ?? true;
  const stream = o.stream ?? process.stdout;
  const cases = nmsCases(n, o.seed ?? 1);
  const torch = (o.torch ?? true) ? benchTorchNms(cases, runs, o.python) : null;
  const rows: NmsBenchRow[] = [];
  const out = (s: string): void => {
    if (print) stream.write(s);
  };
  out(`NMS on ${n} boxes, ${runs} runs per case, single thread${torch ? ', torchvision.ops (torch.set_num_threads(1)) on the same boxes' : ''}\n`);
  out(`${'case'.padEnd(12)} ${'flavor'.padEnd(12)} ${'boxes'.padStart(6)} ${'kept'.padStart(6)} ${'median ms'.padStart(10)} ${'min ms'.padStart(8)}${torch ? `${'torch ms'.padStart(10)}  torch/ours` : ''}\n`);
  let mismatch = false;
  for (const c of cases) {
    for (const flavor of ['torchvision', 'mmcv'] as const) {
      const t = timeIt(() => runOurs(c, flavor), runs);
      const row: NmsBenchRow = { case: c.name, boxes: c.scores.length, flavor, ms_median: t.median, ms_min: t.min, kept: t.keep.length };
      const tv = flavor === 'torchvision' ? torch?.get(c.name) : undefined;
      let extra = '';
      if (tv) {
        row.torch_ms_median = tv.ms;
        row.matches_torch = tv.keep.length === t.keep.length && tv.keep.every((v, k) => v === t.keep[k]);
        extra = `${tv.ms.toFixed(3).padStart(10)}  ${(tv.ms / t.median).toFixed(1)}x`;
        if (!row.matches_torch) {
          mismatch = true;
          extra += `  MISMATCH: torchvision kept ${tv.keep.length}, we kept ${t.keep.length}`;
        }
      }
      rows.push(row);
      out(`${c.name.padEnd(12)} ${flavor.padEnd(12)} ${String(row.boxes).padStart(6)} ${String(row.kept).padStart(6)} ${t.median.toFixed(3).padStart(10)} ${t.min.toFixed(3).padStart(8)}${extra}\n`);
    }
  }
  if (mismatch) process.stderr.write('fasternet: bench nms: KEPT INDICES DIFFER FROM TORCHVISION (see MISMATCH above)\n');
  else if (torch) out('kept indices equal torchvision\'s in every case\n');
  else if (o.torch ?? true) out('torchvision: not available (/usr/bin/python3 with torch and torchvision), skipped\n');
  return rows;
}

export function register(program: Command): void {
  benchCommand(program).command('nms')
    .description('time NMS (torchvision and mmcv flavors) on RPN-like, box-head-like and plain cases, against torchvision.ops where available')
    .option('--boxes <n>', 'boxes per case', '5000')
    .option('--runs <n>', 'timed runs per case (after a warm-up)', '50')
    .option('--seed <n>', 'generator seed', '1')
    .option('--no-torch', 'skip torchvision.ops (timed by default where /usr/bin/python3 has torch)')
    .option('--json <file>', 'write [{"case", "boxes", "flavor", "ms_median", "ms_min", "kept", "torch_ms_median"?}] here (- for stdout)')
    .action((opts: { boxes: string; runs: string; seed: string; torch: boolean; json?: string }) => {
      checkOutputFile('--json', opts.json);
      const rows = runBenchNms({
        boxes: positiveInt('--boxes', opts.boxes), runs: positiveInt('--runs', opts.runs), seed: positiveInt('--seed', opts.seed), torch: opts.torch,
        stream: opts.json === STDOUT ? process.stderr : process.stdout,
      });
      if (rows.some((r) => r.matches_torch === false)) process.exitCode = 1;
      if (opts.json) writeOutput('--json', opts.json, `${JSON.stringify(rows, null, 1)}\n`);
    });
}
