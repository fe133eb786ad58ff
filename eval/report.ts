/**
 * `report(dir, input)`: an evaluation people can look at. Writes DIR/index.html (self-contained: no
 * network, opens from disk) with the 12 stats of the model and the baseline side by side, PR curves,
 * COCO's error analysis, the per-category table and the images where the model loses most; the plots
 * beside it as SVG and PNG (plus their Vega-Lite specs), and DIR/report.json with the numbers shown.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { analyzeErrorsThreads, curveAreas, errorCurves, ERROR_TYPES, type ErrorAnalysis } from './analyze.ts';
import type { CocoDataset, CocoGt } from './coco.ts';
import type { PrCurve } from './curves.ts';
import type { CategoryRow, EvalResult, IouType } from './index.ts';
import type { CocoDt } from './load_res.ts';
import { differenceChart, errorChart, prChart, writeChart, type Chart, type ErrorPanel } from './report_charts.ts';
import { autoThreads } from './parallel.ts';
import { drawGallery, rankImages, type GalleryEntry } from './report_gallery.ts';
import { renderHtml } from './report_html.ts';
import { STAT_NAMES, type StatName } from './summary.ts';

export interface ReportSide {
  /** How the report names it: a file or model path. */
  name: string;
  results: Partial<Record<IouType, EvalResult>>;
  /** The loaded detections: needed for the gallery, and for the error analysis where `results` lack it. */
  detections?: CocoDt;
  latencyMs?: number;
}

export interface ReportInput {
  gt: CocoGt;
  /** The GT file as parsed JSON: file names and outlines for the gallery. */
  dataset?: CocoDataset;
  gtName?: string;
  /** The image folder of the GT's file_name entries: the gallery is drawn when given. */
  imagesDir?: string;
  model: ReportSide;
  baseline?: ReportSide;
  /** At most this many gallery images (default 24), which keeps the report small at COCO-val size. */
  galleryMax?: number;
  /** Score from which detections are drawn and counted in the gallery (default 0.3). */
  scoreThr?: number;
  /** Categories shown in the per-category error analysis (default 4). */
  worstCategories?: number;
  title?: string;
  /** The command that made the report, shown at the top. */
  command?: string;
  /** Threads for the error analysis, this one included (default 'auto': one per core, up to 4, for large inputs). */
  threads?: number | 'auto';
}

export interface TypeReport {
  iouType: IouType;
  stats: Array<{ name: StatName; label: string; model: number; baseline?: number; diff?: number }>;
  perCategory: Array<CategoryRow & { numGt: number; baseline?: Pick<CategoryRow, 'AP' | 'AP50' | 'AP75'> }>;
  prCurves: { model: PrCurve[]; baseline?: PrCurve[] };
  /** Areas under analyze()'s curves, [E][A] over all categories, per side. */
  errorAreas: { model: number[][]; baseline?: number[][] };
  /** The categories whose error analysis is plotted, with their areas (area all) per side. */
  worst: Array<{ id: number; name: string; model: number[]; baseline?: number[] }>;
  charts: Array<{ name: string; title: string; width: number; height: number }>;
}

export interface ReportData {
  title: string;
  command?: string;
  gt?: string;
  model: { name: string; numDetections: number; latencyMs?: number };
  baseline?: { name: string; numDetections: number; latencyMs?: number };
  numImages: number;
  numGt: number;
  areaLabels: string[];
  errorTypes: string[];
  types: TypeReport[];
  gallery: { scoreThr: number; max: number; candidates: number; entries: GalleryEntry[]; note?: string };
}

export interface ReportOutput {
  index: string;
  data: ReportData;
  /** Wall milliseconds per step (analysis, charts, gallery, html). */
  timings: Record<string, number>;
  /** CPU milliseconds (user + system, this process) per step: what a step costs when the machine is shared. */
  cpuTimings: Record<string, number>;
}

/** Runs a step, recording its wall and CPU milliseconds under `name`. */
async function timed<T>(t: { wall: Record<string, number>; cpu: Record<string, number> }, name: string, f: () => T | Promise<T>): Promise<T> {
  const w = performance.now();
  const c = process.cpuUsage();
  try {
    return await f();
  } finally {
    const u = process.cpuUsage(c);
    t.wall[name] = performance.now() - w;
    t.cpu[name] = (u.user + u.system) / 1000;
  }
}

function diffOf(a: number, b: number | undefined): number | undefined {
  return b === undefined || a === -1 || b === -1 ? undefined : a - b;
}

async function analysisOf(side: ReportSide, t: IouType, gt: CocoGt, threads: number | 'auto'): Promise<ErrorAnalysis | undefined> {
  const r = side.results[t]!;
  if (r.errorAnalysis) return r.errorAnalysis;
  const dt = side.detections;
  if (!dt) return undefined;
  return analyzeErrorsThreads(gt, dt, t, r.params, threads === 'auto' ? autoThreads(dt, gt) : threads);
}

/** Category indices plotted in the error analysis: largest AP loss to the baseline (or lowest AP) first. */
function pickWorst(m: EvalResult, b: EvalResult | undefined, n: number): number[] {
  const ks = m.perCategory.map((_, k) => k).filter((k) => m.perCategory[k].AP > -1 && (!b || b.perCategory[k].AP > -1));
  const key = (k: number) => (b ? m.perCategory[k].AP - b.perCategory[k].AP : m.perCategory[k].AP);
  return ks.sort((x, y) => key(x) - key(y) || x - y).slice(0, n);
}

function gtCounts(gt: CocoGt): Int32Array {
  const n = new Int32Array(gt.categoryIds.length);
  for (let i = 0; i < gt.anns.n; i++) if (!gt.anns.iscrowd[i]) n[gt.anns.cat[i]]++;
  return n;
}

type Timings = { wall: Record<string, number>; cpu: Record<string, number> };

async function typeReport(dir: string, input: ReportInput, t: IouType, timings: Timings): Promise<TypeReport> {
  const { gt, model, baseline } = input;
  const m = model.results[t]!;
  const b = baseline?.results[t];
  const numGt = gtCounts(gt);
  const threads = input.threads ?? 'auto';
  const [am, ab] = await timed(timings, `analysis_${t}`, async () => [
    await analysisOf(model, t, gt, threads),
    baseline && b ? await analysisOf(baseline, t, gt, threads) : undefined,
  ]);

  const areaLabels = m.params.areaRngLbl;
  const stats = STAT_NAMES.map((name, i) => ({
    name,
    label: m.summary[i].slice(0, m.summary[i].lastIndexOf(' = ')).trim(),
    model: m.stats[i],
    ...(b ? { baseline: b.stats[i], diff: diffOf(m.stats[i], b.stats[i]) } : {}),
  }));
  const perCategory = m.perCategory.map((row, k) => ({
    ...row,
    numGt: numGt[k],
    ...(b ? { baseline: { AP: b.perCategory[k].AP, AP50: b.perCategory[k].AP50, AP75: b.perCategory[k].AP75 } } : {}),
  }));
  const worstK = pickWorst(m, b, input.worstCategories ?? 4);
  const charts: Chart[] = [];
  const sideNames = b ? ['model', 'baseline'] : ['model'];
  charts.push(
    prChart(`pr_${t}`, `${t}: precision-recall (maxDets 100, mean over categories)`, [
      { side: sideNames[0], curves: m.prCurves },
      ...(b ? [{ side: 'baseline', curves: b.prCurves }] : []),
    ]),
  );
  const errorAreas: TypeReport['errorAreas'] = { model: [] };
  const worst: TypeReport['worst'] = worstK.map((k) => ({ id: m.perCategory[k].id, name: m.perCategory[k].name, model: [] }));
  if (am) {
    const overall: Array<[string, number[][][]]> = [['model', errorCurves(am)]];
    if (ab) overall.push(['baseline', errorCurves(ab)]);
    errorAreas.model = curveAreas(overall[0][1]);
    if (ab) errorAreas.baseline = curveAreas(overall[1][1]);
    // Area ranges without any GT would be all FN: left out of the plot (their PR curve is null too).
    const shown = areaLabels.map((area, a) => ({ area, a })).filter(({ area }) => m.prCurves.some((c) => c.area === area && c.precision));
    const panels: ErrorPanel[] = [];
    for (const [side, curves] of overall) for (const { area, a } of shown) panels.push({ panel: `${side} · ${area}`, curves: curves.map((e) => e[a]) });
    if (panels.length) {
      charts.push(errorChart(`errors_${t}`, `${t}: error analysis, all categories (C75 .. FN, cumulative)`, am.recThrs, panels, shown.length));
    }
    const wp: ErrorPanel[] = [];
    worstK.forEach((k, i) => {
      const cm = errorCurves(am, [k]);
      worst[i].model = curveAreas(cm).map((e) => e[0]);
      wp.push({ panel: `${m.perCategory[k].name} · model`, curves: cm.map((e) => e[0]) });
      if (ab) {
        const cb = errorCurves(ab, [k]);
        worst[i].baseline = curveAreas(cb).map((e) => e[0]);
        wp.push({ panel: `${m.perCategory[k].name} · baseline`, curves: cb.map((e) => e[0]) });
      }
    });
    if (wp.length) {
      const what = b ? 'largest AP loss to the baseline' : 'lowest AP';
      charts.push(errorChart(`errors_worst_${t}`, `${t}: error analysis of the categories with the ${what} (area all)`, am.recThrs, wp, 4));
    }
  }
  if (b) {
    const rows = perCategory.filter((r) => r.AP > -1 && r.baseline!.AP > -1).map((r) => ({ name: r.name, diff: r.AP - r.baseline!.AP }));
    if (rows.length) charts.push(differenceChart(`ap_diff_${t}`, `${t}: AP@[.5:.95] per category, model - baseline`, rows));
  }
  const drawn: TypeReport['charts'] = [];
  await timed(timings, `charts_${t}`, async () => {
    for (const c of charts) {
      const f = await writeChart(dir, c);
      drawn.push({ name: c.name, title: c.title, width: f.width, height: f.height });
    }
  });
  return {
    iouType: t,
    stats,
    perCategory,
    prCurves: { model: m.prCurves, ...(b ? { baseline: b.prCurves } : {}) },
    errorAreas,
    worst,
    charts: drawn,
  };
}

/** Writes the report into dir (created if needed); returns the index path and the data shown. */
export async function report(dir: string, input: ReportInput): Promise<ReportOutput> {
  const types = (Object.keys(input.model.results) as IouType[]).filter((t) => input.model.results[t]);
  if (types.length === 0) throw new Error('report: the model side has no evaluation results');
  for (const t of types) {
    if (input.baseline && !input.baseline.results[t]) throw new Error(`report: the baseline has no ${t} results`);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new UserError(`cannot create --report folder ${dir}: ${(err as Error).message}`);
  }
  const timings: Timings = { wall: {}, cpu: {} };
  const typeReports: TypeReport[] = [];
  for (const t of types) typeReports.push(await typeReport(dir, input, t, timings));

  const max = input.galleryMax ?? 24;
  const scoreThr = input.scoreThr ?? 0.3;
  let gallery: ReportData['gallery'] = { scoreThr, max, candidates: 0, entries: [] };
  const md = input.model.detections;
  const bd = input.baseline?.detections;
  if (!input.baseline) gallery.note = 'no baseline given: the gallery compares the model with a baseline';
  else if (!input.dataset || !md || !bd) gallery.note = 'the gallery needs the loaded GT file and both sides\' detections';
  else {
    const { dataset, imagesDir } = input;
    const ranked = await timed(timings, 'gallery_rank', () => rankImages(dataset, input.gt, md, bd, scoreThr));
    const entries = await timed(timings, 'gallery_draw', () => drawGallery(dir, ranked.slice(0, max), dataset, imagesDir));
    gallery = { scoreThr, max, candidates: ranked.length, entries };
    if (!imagesDir) gallery.note = 'no image folder given (--images): images listed, not drawn';
  }

  const first = input.model.results[types[0]]!;
  const data: ReportData = {
    title: input.title ?? 'COCO evaluation report',
    ...(input.command ? { command: input.command } : {}),
    ...(input.gtName ? { gt: input.gtName } : {}),
    model: { name: input.model.name, numDetections: first.numDetections, ...(input.model.latencyMs !== undefined ? { latencyMs: input.model.latencyMs } : {}) },
    ...(input.baseline
      ? {
          baseline: {
            name: input.baseline.name,
            numDetections: input.baseline.results[types[0]]!.numDetections,
            ...(input.baseline.latencyMs !== undefined ? { latencyMs: input.baseline.latencyMs } : {}),
          },
        }
      : {}),
    numImages: input.gt.imageIds.length,
    numGt: first.numGt,
    areaLabels: first.params.areaRngLbl,
    errorTypes: [...ERROR_TYPES],
    types: typeReports,
    gallery,
  };
  const index = join(dir, 'index.html');
  await timed(timings, 'html', () => {
    writeFileSync(index, renderHtml(data));
    writeFileSync(join(dir, 'report.json'), `${JSON.stringify(data)}\n`);
  });
  return { index, data, timings: timings.wall, cpuTimings: timings.cpu };
}
