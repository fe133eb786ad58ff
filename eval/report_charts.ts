/**
 * The report's plots as Vega-Lite specs, rendered headless: Vega-Lite compiles each spec to Vega, a Vega
 * View with no renderer writes the SVG, and sharp (librsvg) rasterises it to PNG. No browser, no canvas.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';
import { ERROR_TYPES } from './analyze.ts';
import type { PrCurve } from './curves.ts';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
/** Fixed colours per error type (C75 darkest blue .. FN light grey), so plots compare across models. */
const ERROR_COLORS = ['#2b5c8a', '#4f86c6', '#8fb8de', '#c5504b', '#5cb85c', '#8064a2', '#ffb347'];

/** Plotted values to 5 decimals: far below a pixel, and it keeps the SVG and the spec small. */
const r5 = (v: number): number => Math.round(v * 1e5) / 1e5;

export interface Chart {
  /** File stem: NAME.svg, NAME.png (and NAME.vl.json, the spec) in the report folder. */
  name: string;
  title: string;
  spec: TopLevelSpec;
}

const config = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  view: { stroke: '#ccc' },
  axis: { labelFontSize: 11, titleFontSize: 12, gridColor: '#eee' },
  header: { labelFontSize: 12, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
};

/** PR curves of one iou type: a panel per area range, colour = IoU, dash = model or baseline. */
export function prChart(name: string, title: string, sides: Array<{ side: string; curves: PrCurve[] }>): Chart {
  const values: Array<Record<string, unknown>> = [];
  for (const { side, curves } of sides) {
    for (const c of curves) {
      if (!c.precision) continue;
      const iou = c.iou === 'mean' ? 'IoU .50:.95' : `IoU ${c.iou.toFixed(2)}`;
      c.recall.forEach((r, i) => values.push({ side, iou, area: c.area, recall: r5(r), precision: r5(c.precision![i]) }));
    }
  }
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    data: { values },
    facet: { column: { field: 'area', type: 'nominal', sort: ['all', 'small', 'medium', 'large'], title: 'area' } },
    spec: {
      width: 210,
      height: 190,
      mark: { type: 'line', strokeWidth: 1.8, interpolate: 'step-after' },
      encoding: {
        x: { field: 'recall', type: 'quantitative', scale: { domain: [0, 1] } },
        y: { field: 'precision', type: 'quantitative', scale: { domain: [0, 1] } },
        color: { field: 'iou', type: 'nominal', title: 'IoU', sort: ['IoU 0.50', 'IoU 0.75', 'IoU .50:.95'] },
        strokeDash: {
          field: 'side',
          type: 'nominal',
          title: null,
          sort: sides.map((s) => s.side),
          scale: { domain: sides.map((s) => s.side), range: [[1, 0], [5, 3]].slice(0, sides.length) },
        },
      },
    },
    config,
  } as TopLevelSpec;
  return { name, title, spec };
}

export interface ErrorPanel {
  /** Panel title, e.g. an area range or a category name. */
  panel: string;
  /** Curves [E][R] (cumulative: C75 <= C50 <= ... <= FN). */
  curves: number[][];
}

/** analyze()'s stacked area plot: band e lies between curve e - 1 and curve e (areas go in a table). */
export function errorChart(name: string, title: string, recall: ArrayLike<number>, panels: ErrorPanel[], columns = 4): Chart {
  // Short keys and indices (names put back by calculate transforms) keep the spec about half the size.
  const values: Array<Record<string, number>> = [];
  panels.forEach((p, i) => {
    ERROR_TYPES.forEach((_, e) => {
      for (let r = 0; r < recall.length; r++) {
        values.push({ p: i, e, r: r5(recall[r]), hi: r5(p.curves[e][r]), lo: e === 0 ? 0 : r5(p.curves[e - 1][r]) });
      }
    });
  });
  const names = (list: readonly string[]) => JSON.stringify(list).replace(/"/g, "'");
  const spec = {
    $schema: SCHEMA,
    title,
    data: { values },
    transform: [
      { calculate: `${names(panels.map((p) => p.panel))}[datum.p]`, as: 'panel' },
      { calculate: `${names(ERROR_TYPES)}[datum.e]`, as: 'type' },
    ],
    facet: { field: 'panel', type: 'nominal', sort: panels.map((p) => p.panel), title: null },
    columns,
    spec: {
      width: 190,
      height: 170,
      mark: { type: 'area', opacity: 0.95 },
      encoding: {
        x: { field: 'r', type: 'quantitative', title: 'recall', scale: { domain: [0, 1] } },
        y: { field: 'hi', type: 'quantitative', title: 'precision', scale: { domain: [0, 1] } },
        y2: { field: 'lo' },
        color: { field: 'type', type: 'nominal', sort: [...ERROR_TYPES], scale: { domain: [...ERROR_TYPES], range: ERROR_COLORS }, title: 'error type' },
        order: { field: 'e' },
      },
    },
    resolve: { scale: { y: 'shared' } },
    config,
  };
  return { name, title, spec: spec as unknown as TopLevelSpec };
}

/** Horizontal bars: per-category AP difference (model - baseline), sorted, coloured by sign. */
export function differenceChart(name: string, title: string, rows: Array<{ name: string; diff: number }>): Chart {
  const values = rows.map((r) => ({ category: r.name, diff: r5(r.diff), sign: r.diff >= 0 ? 'model better' : 'baseline better' }));
  const spec: TopLevelSpec = {
    $schema: SCHEMA,
    title,
    data: { values },
    width: 420,
    height: { step: 13 },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'category', type: 'nominal', sort: { field: 'diff', order: 'ascending' }, title: null, axis: { labelFontSize: 10 } },
      x: { field: 'diff', type: 'quantitative', title: 'AP difference (model - baseline)' },
      color: { field: 'sign', type: 'nominal', scale: { domain: ['model better', 'baseline better'], range: ['#4f86c6', '#c5504b'] }, title: null },
    },
    config,
  } as TopLevelSpec;
  return { name, title, spec };
}

/** Renders a spec to SVG text (Vega headless: no renderer, no DOM). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: vega's Node build has a top-level await (its optional canvas), which would stop
  // CommonJS consumers from require()-ing the package at all.
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Writes NAME.svg, NAME.png (2x for sharp text) and NAME.vl.json into dir. */
export async function writeChart(dir: string, chart: Chart): Promise<{ svg: string; png: string; width: number; height: number }> {
  const svg = await renderSvg(chart.spec);
  const svgPath = join(dir, `${chart.name}.svg`);
  const pngPath = join(dir, `${chart.name}.png`);
  writeFileSync(svgPath, svg);
  writeFileSync(join(dir, `${chart.name}.vl.json`), `${JSON.stringify(chart.spec)}\n`);
  const info = await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toFile(pngPath);
  return { svg: svgPath, png: pngPath, width: info.width / 2, height: info.height / 2 };
}
