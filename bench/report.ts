/**
 * How long `report()` takes and how big it gets at COCO-val size: `bench eval`'s generated case
 * (eval/synthetic.ts, 5000 images, 80 categories, 100 detections an image), its mask results as the
 * baseline and the same results weakened as the model (a third of the confident ones pushed to a low
 * score, a fifth of the boxes shifted), so there are images where it loses; bbox and segm. No images exist for it, so the gallery is a capped
 * list. Prints the evaluation time, the report's steps and the sizes.
 *
 *   npx tsx bench/report.ts [--images N] [--types bbox,segm] [--out DIR]
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { evaluateLoadedAsync, loadGt, loadRes, parseIouTypes, readJsonFile, report, type CocoDataset } from '../eval/index.ts';
import { COCO_VAL_LIKE, writeSyntheticCase } from './synthetic_coco.ts';

function dirSize(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) n += f.isDirectory() ? dirSize(join(dir, f.name)) : statSync(join(dir, f.name)).size;
  return n;
}

const { values } = parseArgs({ options: { images: { type: 'string' }, types: { type: 'string' }, out: { type: 'string' } } });
const o = { ...COCO_VAL_LIKE, images: Number(values.images ?? COCO_VAL_LIKE.images) };
const types = parseIouTypes(values.types ?? 'bbox,segm');
const dir = join(tmpdir(), `fasternet-bench-report-${o.images}i-s${o.seed}`);
const out = values.out ?? join(dir, 'report');
let t = performance.now();
if (!existsSync(join(dir, 'dt_segm.json'))) writeSyntheticCase(dir, o);
console.log(`case ${dir} (${((performance.now() - t) / 1000).toFixed(1)} s to make or find)`);

// CPU seconds (user + system, all threads) next to wall seconds: on a shared machine the wall time
// says little, the CPU time what the work costs.
const cpu = (from: NodeJS.CpuUsage): string => {
  const u = process.cpuUsage(from);
  return `${((u.user + u.system) / 1e6).toFixed(1)} s CPU`;
};
let c = process.cpuUsage();
t = performance.now();
const dataset = readJsonFile(join(dir, 'gt.json'), 'GT') as CocoDataset;
const gt = loadGt(dataset, { iouTypes: types });
// The model: the same mask results, a third of the confident ones pushed to a low score (missed at the
// gallery's working point, ranked last by AP) and a fifth of the boxes shifted.
const dm = loadRes(gt, join(dir, 'dt_segm.json'), { iouTypes: types });
for (let i = 0; i < dm.n; i++) {
  if (dm.score[i] > 0.5 && i % 3 === 0) dm.score[i] *= 0.1;
  if (i % 5 === 0) dm.bbox[4 * i] += 0.3 * dm.bbox[4 * i + 2];
}
const db = loadRes(gt, join(dir, 'dt_segm.json'), { iouTypes: types });
const rm = await evaluateLoadedAsync(gt, dm, types);
const rb = await evaluateLoadedAsync(gt, db, types);
const evalS = (performance.now() - t) / 1000;
const evalCpu = cpu(c);

c = process.cpuUsage();
t = performance.now();
const r = await report(out, {
  gt,
  dataset,
  model: { name: 'dt_segm.json, weakened', results: rm, detections: dm },
  baseline: { name: 'dt_segm.json', results: rb, detections: db },
  title: `bench: ${o.images}-image synthetic case`,
});
const reportS = (performance.now() - t) / 1000;
const reportCpu = cpu(c);
const steps = Object.entries(r.timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s / ${(r.cpuTimings[k] / 1000).toFixed(1)} s CPU`).join(', ');
console.log(`${o.images} images, ${gt.anns.n} GT, ${dm.n} + ${db.n} detections, ${types.join(',')}`);
console.log(`evaluation (load + both sides): ${evalS.toFixed(1)} s wall, ${evalCpu}`);
console.log(`report(): ${reportS.toFixed(1)} s wall, ${reportCpu}`);
console.log(`  steps, wall / CPU: ${steps}`);
console.log(`index.html ${(statSync(r.index).size / 1e6).toFixed(2)} MB, folder ${(dirSize(out) / 1e6).toFixed(2)} MB, gallery ${r.data.gallery.entries.length} of ${r.data.gallery.candidates} candidates`);
