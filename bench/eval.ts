/**
 * `fasternet bench eval`: times the evaluator on a generated COCO-val-sized case (5000 images, 80
 * categories, ~7 GT and 100 detections per image; box and mask results) and, where Python can import
 * pycocotools, times pycocotools on the same files in the same run, checks that both give the same 12
 * stats and per-category AP (within 1e-9), and prints the speedup and both peak RSS.
 *
 * Each side runs in its own fresh process from the file paths to the stats (reading and parsing the JSON
 * included), so that times and peak memory are those of one `fasternet eval` / one pycocotools script.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../core/errors.ts';
import { siblingModule } from '../core/worker.ts';
import type { IouType } from '../eval/params.ts';
import { STAT_NAMES } from '../eval/summary.ts';
import { COCO_VAL_LIKE, writeSyntheticCase, type SyntheticOptions } from './synthetic_coco.ts';

export interface BenchEvalOptions extends SyntheticOptions {
  iouTypes: IouType[];
  /** Where the case is written (default: a folder in the OS temp dir named after the options). */
  dir?: string;
  /** Rewrite the case even if a matching one exists. */
  regenerate?: boolean;
  /** Delete the case afterwards (default: keep it for the next run). */
  clean?: boolean;
  /** Skip pycocotools even where available. */
  pycocotools?: boolean;
  /** Python interpreter to try first. */
  python?: string;
  /** Threads for our evaluation (count or 'auto'; default 1, as `fasternet eval`). */
  threads?: number | 'auto';
  /** Largest allowed |ours - pycocotools| on any stat or per-category AP. */
  tolerance?: number;
  /**
   * Take pycocotools' timing and stats from its last run on this case (saved next to the case) instead of
   * running it again (~50 s a type): for iterating on our side. Default: $FASTERNET_BENCH_REUSE_PYCOCOTOOLS=1.
   * Reported ratios then compare runs made at different times; final numbers should come from one run.
   */
  reusePycocotools?: boolean;
}

export interface SideResult {
  wallMs: number;
  cpuMs?: number;
  maxRssKb: number;
  stats: number[];
  perCategoryAp: Record<string, number>;
}

export interface BenchEvalRow {
  iouType: IouType;
  ours: SideResult;
  pycocotools?: SideResult & { python: string; loadMs: number; evaluateMs: number; accumulateMs: number; reused?: string };
  /** pycocotools wall time / ours. */
  speedup?: number;
  /** The same on CPU time, steadier where other processes share the cores. */
  cpuSpeedup?: number;
  maxStatDiff?: number;
  maxCategoryDiff?: number;
  ok: boolean;
}

const PY_SCRIPT = `
import sys, time, json, contextlib, io, resource
t0 = time.perf_counter()
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt, dt, iou_type = sys.argv[1:4]
t0 = time.perf_counter()
c0 = time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    G = COCO(gt)
    D = G.loadRes(dt)
    t1 = time.perf_counter()
    E = COCOeval(G, D, iou_type)
    E.evaluate()
    t2 = time.perf_counter()
    E.accumulate()
    t3 = time.perf_counter()
    E.summarize()
t4 = time.perf_counter()
pc = {}
for k, cid in enumerate(E.params.catIds):
    p = E.eval['precision'][:, :, k, 0, 2]
    p = p[p > -1]
    pc[str(cid)] = float(np.mean(p)) if p.size else -1.0
print(json.dumps({'wallMs': (t4 - t0) * 1e3, 'cpuMs': (time.process_time() - c0) * 1e3, 'loadMs': (t1 - t0) * 1e3, 'evaluateMs': (t2 - t1) * 1e3,
                  'accumulateMs': (t3 - t2) * 1e3, 'maxRssKb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  'stats': [float(s) for s in E.stats], 'perCategoryAp': pc}))
`;

function caseDir(o: BenchEvalOptions): string {
  return (
    o.dir ??
    join(
      tmpdir(),
      `fasternet-bench-eval-${o.images}i-${o.categories}c-${o.gtPerImage}g-${o.detsPerImage}d-${o.crowdRatio}cr-s${o.seed}`,
    )
  );
}

/** Writes the case unless the folder already holds one made with the same options. */
function ensureCase(o: BenchEvalOptions, log: (s: string) => void): { dir: string; gt: string; files: Record<IouType, string> } {
  const dir = caseDir(o);
  const meta = join(dir, 'case.json');
  const wanted: SyntheticOptions = {
    images: o.images,
    categories: o.categories,
    gtPerImage: o.gtPerImage,
    detsPerImage: o.detsPerImage,
    crowdRatio: o.crowdRatio,
    seed: o.seed,
  };
  let have: unknown = null;
  if (!o.regenerate && existsSync(meta)) {
    try {
      have = JSON.parse(readFileSync(meta, 'utf8')).options;
    } catch {
      have = null;
    }
  }
  const files = { bbox: join(dir, 'dt_bbox.json'), segm: join(dir, 'dt_segm.json') };
  if (JSON.stringify(have) === JSON.stringify(wanted)) {
    log(`case: reusing ${dir}`);
  } else {
    const t0 = performance.now();
    const made = writeSyntheticCase(dir, wanted);
    writeFileSync(meta, JSON.stringify({ options: wanted, numGt: made.numGt, numDets: made.numDets }));
    log(`case: generated in ${((performance.now() - t0) / 1000).toFixed(1)} s into ${dir}`);
  }
  const info = JSON.parse(readFileSync(meta, 'utf8'));
  log(
    `case: ${o.images} images, ${o.categories} categories, ${info.numGt} GT objects, ` +
      `${info.numDets} detections (boxes; masks as compressed RLE with their boxes)`,
  );
  return { dir, gt: join(dir, 'gt.json'), files };
}

function runOurs(gt: string, dt: string, iouType: IouType, threads: number | 'auto'): SideResult {
  const worker = fileURLToPath(siblingModule('./eval_worker', import.meta.url));
  // The TypeScript sources need tsx's loader in the child; compiled JavaScript runs as it is.
  const loader = worker.endsWith('.ts') ? ['--import', import.meta.resolve('tsx')] : [];
  const r = spawnSync(process.execPath, [...loader, worker, gt, dt, iouType, String(threads)], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`evaluation worker failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as SideResult;
}

/** The first interpreter that imports pycocotools, or null. */
export function findPycocotools(preferred?: string): string | null {
  const candidates = [preferred, process.env.PYTHON, 'python3', '/usr/bin/python3', 'python'].filter(
    (c): c is string => !!c,
  );
  for (const py of [...new Set(candidates)]) {
    const r = spawnSync(py, ['-c', 'import pycocotools.cocoeval, pycocotools.mask'], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return py;
  }
  return null;
}

function runPycocotools(python: string, gt: string, dt: string, iouType: IouType): NonNullable<BenchEvalRow['pycocotools']> {
  const r = spawnSync(python, ['-c', PY_SCRIPT, gt, dt, iouType], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`pycocotools run failed (${r.status ?? r.signal}): ${r.stderr.trim().slice(-2000)}`);
  return { python, ...JSON.parse(r.stdout.trim().split('\n').pop()!) };
}

type PyRow = NonNullable<BenchEvalRow['pycocotools']>;

const pyCachePath = (dir: string, t: IouType): string => join(dir, `pycocotools_${t}.json`);

/** pycocotools' saved run on this case, or null. */
function readPyCache(dir: string, t: IouType): (PyRow & { measuredAt: string }) | null {
  try {
    return JSON.parse(readFileSync(pyCachePath(dir, t), 'utf8'));
  } catch {
    return null;
  }
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  let d = a.length === b.length ? 0 : Infinity;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function maxCategoryDiff(a: Record<string, number>, b: Record<string, number>): number {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  let d = 0;
  for (const k of keys) d = Math.max(d, k in a && k in b ? Math.abs(a[k] - b[k]) : Infinity);
  return d;
}

const mib = (kb: number): string => `${(kb / 1024).toFixed(0)} MiB`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

/** Generates (or reuses) the case, runs both evaluators and prints the report. */
export function runBenchEval(o: BenchEvalOptions, log: (s: string) => void = console.log): BenchEvalRow[] {
  for (const [k, v] of Object.entries({ images: o.images, categories: o.categories, detsPerImage: o.detsPerImage })) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer`);
  }
  if (!(o.gtPerImage >= 0) || !(o.crowdRatio >= 0 && o.crowdRatio <= 1)) {
    throw new UserError('--gt-per-image must be >= 0 and --crowd-ratio within [0, 1]');
  }
  const tol = o.tolerance ?? 1e-9;
  const c = ensureCase(o, log);
  const reuse = o.reusePycocotools ?? process.env.FASTERNET_BENCH_REUSE_PYCOCOTOOLS === '1';
  const cached = (t: IouType): ReturnType<typeof readPyCache> => (reuse && o.pycocotools !== false ? readPyCache(c.dir, t) : null);
  const python = o.pycocotools === false || o.iouTypes.every((t) => cached(t)) ? null : findPycocotools(o.python);
  log(`ours: fresh process per run, ${o.threads ?? 1} thread(s)`);
  log(
    python
      ? `pycocotools: ${python} (same files, same run; fresh process each)`
      : o.iouTypes.every((t) => cached(t))
        ? 'pycocotools: saved runs reused (not run now)'
        : 'pycocotools: not importable here (set PYTHON or PYTHONPATH, or --python), timing ours only',
  );
  const rows: BenchEvalRow[] = [];
  for (const t of o.iouTypes) {
    const ours = runOurs(c.gt, c.files[t], t, o.threads ?? 1);
    const row: BenchEvalRow = { iouType: t, ours, ok: true };
    log(`${t}: ours ${sec(ours.wallMs)} (cpu ${sec(ours.cpuMs ?? NaN)}), peak RSS ${mib(ours.maxRssKb)}`);
    const saved = cached(t);
    if (python || saved) {
      let py: PyRow;
      if (saved) {
        py = { ...saved, reused: saved.measuredAt };
        log(`${t}: pycocotools timing and stats reused from ${pyCachePath(c.dir, t)} (measured ${saved.measuredAt})`);
      } else {
        py = runPycocotools(python!, c.gt, c.files[t], t);
        writeFileSync(pyCachePath(c.dir, t), JSON.stringify({ ...py, measuredAt: new Date().toISOString() }));
      }
      row.pycocotools = py;
      row.speedup = py.wallMs / ours.wallMs;
      row.cpuSpeedup = py.cpuMs! / ours.cpuMs!;
      row.maxStatDiff = maxAbsDiff(ours.stats, py.stats);
      row.maxCategoryDiff = maxCategoryDiff(ours.perCategoryAp, py.perCategoryAp);
      row.ok = row.maxStatDiff <= tol && row.maxCategoryDiff <= tol;
      log(
        `${t}: pycocotools ${sec(py.wallMs)} (cpu ${sec(py.cpuMs ?? NaN)}; load ${sec(py.loadMs)}, evaluate ${sec(py.evaluateMs)}, ` +
          `accumulate ${sec(py.accumulateMs)}), peak RSS ${mib(py.maxRssKb)}`,
      );
      log(
        `${t}: speedup ${row.speedup.toFixed(1)}x (cpu time ${row.cpuSpeedup.toFixed(1)}x); max |diff| stats ${row.maxStatDiff.toExponential(2)}, ` +
          `per-category AP ${row.maxCategoryDiff.toExponential(2)} -> ${row.ok ? 'match' : 'MISMATCH'}`,
      );
    }
    rows.push(row);
  }
  log('');
  log('iouType   ours      pycocotools  speedup  (cpu)   ours RSS   pycoco RSS  stats');
  for (const r of rows) {
    const py = r.pycocotools;
    log(
      [
        r.iouType.padEnd(8),
        sec(r.ours.wallMs).padStart(8),
        (py ? sec(py.wallMs) : '-').padStart(12),
        (r.speedup ? `${r.speedup.toFixed(1)}x` : '-').padStart(8),
        (r.cpuSpeedup ? `${r.cpuSpeedup.toFixed(1)}x` : '-').padStart(7),
        mib(r.ours.maxRssKb).padStart(9),
        (py ? mib(py.maxRssKb) : '-').padStart(11),
        py ? (r.ok ? ' match' : ' MISMATCH') : '',
      ].join(' '),
    );
  }
  for (const r of rows) log(`${r.iouType} ours: ${r.ours.stats.map((s, i) => `${STAT_NAMES[i]}=${s.toFixed(4)}`).join(' ')}`);
  if (o.clean) rmSync(c.dir, { recursive: true, force: true });
  return rows;
}

export const BENCH_EVAL_DEFAULTS: SyntheticOptions = COCO_VAL_LIKE;
