// The HTML report: its numbers are the evaluator's, and it renders in headless Chromium (Debian's
// `chromium`; skipped where absent) with no console error, every image loaded and the tables filled.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runEval } from '../cli/eval.ts';
import { evaluateAll, readJsonFile, type CocoDataset, type CocoResult } from '../eval/index.ts';
import type { ReportData } from '../eval/report.ts';
import { selectImages } from '../api/run_model.ts';
import { formatFixed3 } from '../eval/summary.ts';

const ROOT = join(import.meta.dirname, '..');
const GT = join(ROOT, 'data', 'canvases_val', 'annotations.json');
const IMAGES = join(ROOT, 'data', 'canvases_val', 'images');
const BASELINE = join(ROOT, 'data', 'baselines', 'resnet50_canvases_val_results.json');
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

let tmp: string;
let gtPath: string;
let modelPath: string;
let basePath: string;
let outDir: string;
let lines: string[];

/**
 * A second results set for the same images: the baseline's detections with every third confident one
 * dropped (missed objects) and every fifth box shifted (localisation errors), so the gallery has losses.
 */
function weakerResults(base: CocoResult[]): CocoResult[] {
  const out: CocoResult[] = [];
  base.forEach((r, i) => {
    if (r.score > 0.5 && i % 3 === 0) return;
    const bbox: [number, number, number, number] = [...r.bbox!];
    if (i % 5 === 0) bbox[0] += 0.3 * bbox[2];
    out.push({ ...r, bbox, score: r.score * 0.9 });
  });
  return out;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'fasternet-report-'));
  const { dataset } = selectImages(readJsonFile(GT, 'GT') as CocoDataset, 16);
  const keep = new Set(dataset.images.map((im) => im.id));
  const base = (readJsonFile(BASELINE, 'results') as CocoResult[]).filter((r) => keep.has(r.image_id));
  gtPath = join(tmp, 'gt.json');
  modelPath = join(tmp, 'model.json');
  basePath = join(tmp, 'baseline.json');
  writeFileSync(gtPath, JSON.stringify(dataset));
  writeFileSync(modelPath, JSON.stringify(weakerResults(base)));
  writeFileSync(basePath, JSON.stringify(base));
  outDir = join(tmp, 'report');
  lines = [];
  await runEval(
    { gt: gtPath, results: modelPath, baseline: basePath, iouType: 'bbox,segm', images: IMAGES, report: outDir, perCategory: true, reportGallery: '6' },
    (l) => lines.push(l),
  );
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('eval --report', () => {
  it('shows the evaluator numbers: stats, per-category rows, PR curves', () => {
    const data = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as ReportData;
    const m = evaluateAll(gtPath, modelPath, ['bbox', 'segm']);
    const b = evaluateAll(gtPath, basePath, ['bbox', 'segm']);
    expect(data.types.map((t) => t.iouType)).toEqual(['bbox', 'segm']);
    const html = readFileSync(join(outDir, 'index.html'), 'utf8');
    for (const t of data.types) {
      const rm = m[t.iouType]!;
      const rb = b[t.iouType]!;
      expect(t.stats.map((s) => s.model)).toEqual(rm.stats);
      expect(t.stats.map((s) => s.baseline)).toEqual(rb.stats);
      expect(t.stats.map((s) => s.diff)).toEqual(rm.stats.map((v, i) => (v === -1 || rb.stats[i] === -1 ? undefined : v - rb.stats[i])));
      expect(t.perCategory.map((r) => [r.id, r.name, r.AP, r.AP50, r.AP75])).toEqual(rm.perCategory.map((r) => [r.id, r.name, r.AP, r.AP50, r.AP75]));
      expect(t.perCategory.map((r) => r.baseline!.AP)).toEqual(rb.perCategory.map((r) => r.AP));
      expect(t.prCurves.model).toEqual(rm.prCurves);
      // The table prints the same numbers as pycocotools' format.
      expect(html).toContain(`data-v="${rm.stats[0]}">${formatFixed3(rm.stats[0])}</td>`);
      expect(t.errorAreas.model[6][0]).toBe(1); // FN closes the breakdown
      for (const name of t.charts.map((c) => c.name)) {
        expect(statSync(join(outDir, `${name}.svg`)).size).toBeGreaterThan(1000);
        expect(statSync(join(outDir, `${name}.png`)).size).toBeGreaterThan(1000);
      }
      expect(t.charts.map((c) => c.name)).toEqual([`pr_${t.iouType}`, `errors_${t.iouType}`, `errors_worst_${t.iouType}`, `ap_diff_${t.iouType}`]);
    }
    expect(data.gallery.entries.length).toBe(6);
    expect(data.gallery.candidates).toBeGreaterThanOrEqual(6);
    for (const e of data.gallery.entries) {
      expect(e.picture).toBeDefined();
      expect(e.baseline.tp).toBeGreaterThanOrEqual(e.model.tp);
    }
    // Self-contained: nothing fetched from the network.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(lines.some((l) => /^Report: .*index\.html \(\d+\.\d s; 8 plots, 6 gallery images\)$/.test(l))).toBe(true);
  });

  it('without a baseline: the model alone, no difference plot, a note instead of the gallery', async () => {
    const dir = join(tmp, 'alone');
    const shared = join(ROOT, 'test', 'fixtures', 'coco', 'case_small_a');
    const json = await runEval({ gt: join(shared, 'gt.json'), results: join(shared, 'dt_bbox.json'), report: dir }, () => undefined);
    expect(json.report).toBe(join(dir, 'index.html'));
    const data = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ReportData;
    expect(data.baseline).toBeUndefined();
    expect(data.types[0].charts.map((c) => c.name)).toEqual(['pr_bbox', 'errors_bbox', 'errors_worst_bbox']);
    expect(data.types[0].stats.map((s) => s.model)).toEqual(json.bbox!.statsArray);
    expect(data.gallery.note).toMatch(/no baseline/);
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).not.toContain('model − baseline');
  });

  it('--per-category prints model and baseline columns', () => {
    const start = lines.findIndex((l) => l.startsWith('Per-category AP (bbox'));
    expect(start).toBeGreaterThan(0);
    expect(lines[start + 1]).toMatch(/id\s+category\s+results\s+baseline\s+AP diff/);
    const b = evaluateAll(gtPath, basePath, ['bbox']).bbox!;
    const m = evaluateAll(gtPath, modelPath, ['bbox']).bbox!;
    const row = lines[start + 3];
    const c = m.perCategory[0];
    expect(row).toContain(c.name);
    expect(row.trim().split(/\s+/).slice(-7)).toEqual(
      [c.AP, c.AP50, c.AP75, b.perCategory[0].AP, b.perCategory[0].AP50, b.perCategory[0].AP75].map(formatFixed3).concat(
        `${c.AP - b.perCategory[0].AP < 0 ? '-' : '+'}${formatFixed3(Math.abs(c.AP - b.perCategory[0].AP))}`,
      ),
    );
  });

  it.skipIf(!CHROMIUM)('opens in headless Chromium: no console error, every image rendered, tables filled', async () => {
    // A copy of the page with a probe: errors (script, console.error, failed resources) are collected from
    // the start; on load it clicks a sortable header and writes what it found into the DOM for --dump-dom.
    const html = readFileSync(join(outDir, 'index.html'), 'utf8');
    const head = `<script>window.__errors=[];addEventListener('error',function(e){__errors.push(e.message||('failed to load '+(e.target&&(e.target.src||e.target.href))))},true);
var __ce=console.error;console.error=function(){__errors.push([].join.call(arguments,' '));__ce.apply(console,arguments)};</script>`;
    const probe = `<script>addEventListener('load',function(){
var imgs=[].slice.call(document.images);
var cats=document.querySelector('table.cats'), th=cats.tHead.rows[0].cells[4]; th.click();
var ap=[].map.call(cats.tBodies[0].rows,function(r){return Number(r.cells[4].dataset.v)});
var r={errors:__errors,images:imgs.length,broken:imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).map(function(i){return i.getAttribute('src')}),
tables:[].map.call(document.querySelectorAll('table'),function(t){return t.tBodies[0]?t.tBodies[0].rows.length:0}),apSorted:ap};
var p=document.createElement('pre');p.id='probe';p.textContent=JSON.stringify(r);document.body.appendChild(p);});</script>`;
    const probed = join(outDir, 'probe.html');
    writeFileSync(probed, html.replace('<head>', `<head>${head}`).replace('</body>', `${probe}</body>`));
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--allow-file-access-from-files', '--virtual-time-budget=10000'];
    const dom = spawnSync(CHROMIUM!, [...args, '--dump-dom', `file://${probed}`], { encoding: 'utf8', timeout: 60_000 });
    const m = /<pre id="probe">(.*?)<\/pre>/s.exec(dom.stdout);
    expect(m, dom.stderr.slice(-2000)).not.toBeNull();
    const r = JSON.parse(m![1].replace(/&quot;/g, '"').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>'));
    expect(r.errors).toEqual([]);
    const charts = readdirSync(outDir).filter((f) => f.endsWith('.svg')).length;
    expect(r.images).toBe(charts + 6); // every plot and gallery picture is on the page
    expect(r.broken).toEqual([]);
    expect(r.tables.every((n: number) => n > 0)).toBe(true);
    expect(r.tables.length).toBe(1 + 2 * 3); // meta, and per iou type: stats, error areas, categories
    const valid = r.apSorted.filter((v: number) => v > -1);
    expect(valid).toEqual([...valid].sort((a: number, b: number) => b - a));

    const shot = join(tmp, 'report.png');
    spawnSync(CHROMIUM!, [...args, '--hide-scrollbars', '--window-size=1400,2400', `--screenshot=${shot}`, `file://${join(outDir, 'index.html')}`], { timeout: 60_000 });
    const st = await sharp(shot).stats();
    expect(st.channels[0].stdev).toBeGreaterThan(20); // a page, not a blank window
    if (process.env.FASTERNET_REPORT_SHOT) writeFileSync(process.env.FASTERNET_REPORT_SHOT, readFileSync(shot));
  }, 120_000);
});
