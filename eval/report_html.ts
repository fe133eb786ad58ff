/**
 * The report page: one HTML file, inline CSS and a few lines of inline JS (sortable tables), plots and
 * gallery pictures referenced by relative path so the folder opens from disk with no network.
 */
import type { ReportData, TypeReport } from './report.ts';
import { formatFixed3 } from './summary.ts';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A stat cell: 3 decimals as pycocotools prints, '–' for -1 (nothing to average); sorts by value. */
function num(v: number | undefined): string {
  if (v === undefined || v === -1) return '<td class="n" data-v="-1">–</td>';
  return `<td class="n" data-v="${v}">${formatFixed3(v)}</td>`;
}

function diffCell(v: number | undefined): string {
  if (v === undefined) return '<td class="n" data-v="-9">–</td>';
  const s = formatFixed3(Math.abs(v));
  const cls = s === '0.000' ? '' : v > 0 ? ' up' : ' down';
  return `<td class="n${cls}" data-v="${v}">${v < 0 && s !== '0.000' ? '−' : '+'}${s}</td>`;
}

function img(name: string, title: string, width: number, height: number): string {
  return `<figure><a href="${name}.svg"><img src="${name}.svg" alt="${esc(title)}" width="${Math.round(width)}" height="${Math.round(height)}"></a>` +
    `<figcaption>${esc(title)} · <a href="${name}.png">PNG</a> · <a href="${name}.vl.json">Vega-Lite spec</a></figcaption></figure>`;
}

function chart(t: TypeReport, name: string): string {
  const c = t.charts.find((x) => x.name === name);
  return c ? img(c.name, c.title, c.width, c.height) : '';
}

function statsTable(t: TypeReport, base: boolean): string {
  const head = `<tr><th>stat</th><th>pycocotools line</th><th>model</th>${base ? '<th>baseline</th><th>model − baseline</th>' : ''}</tr>`;
  const rows = t.stats.map(
    (s) => `<tr><td>${s.name}</td><td class="lbl">${esc(s.label)}</td>${num(s.model)}${base ? num(s.baseline) + diffCell(s.diff) : ''}</tr>`,
  );
  return `<table class="stats"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

function errorTable(d: ReportData, t: TypeReport): string {
  const head = `<tr><th>curves, area all</th>${d.errorTypes.map((e) => `<th>${e}</th>`).join('')}</tr>`;
  const row = (name: string, v: number[]) => `<tr><td>${esc(name)}</td>${v.map((x) => num(x)).join('')}</tr>`;
  const rows: string[] = [];
  if (t.errorAreas.model.length) rows.push(row('model, all categories', t.errorAreas.model.map((e) => e[0])));
  if (t.errorAreas.baseline) rows.push(row('baseline, all categories', t.errorAreas.baseline.map((e) => e[0])));
  for (const w of t.worst) {
    if (w.model.length) rows.push(row(`${w.name}, model`, w.model));
    if (w.baseline) rows.push(row(`${w.name}, baseline`, w.baseline));
  }
  if (!rows.length) return '<p class="note">No error analysis (the detections were not available).</p>';
  return `<table class="errors"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

function categoryTable(t: TypeReport, base: boolean): string {
  const cols = ['id', 'category', 'supercategory', 'GT', 'AP', 'AP50', 'AP75'];
  const bcols = base ? ['baseline AP', 'baseline AP50', 'baseline AP75', 'AP diff', 'AP50 diff', 'AP75 diff'] : [];
  const head = `<tr>${[...cols, ...bcols].map((c) => `<th title="click to sort">${c}</th>`).join('')}</tr>`;
  const rows = t.perCategory.map((r) => {
    const b = r.baseline;
    const d = (x: number, y: number | undefined) => diffCell(x === -1 || y === undefined || y === -1 ? undefined : x - y);
    return (
      `<tr><td class="n" data-v="${r.id}">${r.id}</td><td>${esc(r.name)}</td><td>${esc(r.supercategory ?? '')}</td>` +
      `<td class="n" data-v="${r.numGt}">${r.numGt}</td>${num(r.AP)}${num(r.AP50)}${num(r.AP75)}` +
      (b ? `${num(b.AP)}${num(b.AP50)}${num(b.AP75)}${d(r.AP, b.AP)}${d(r.AP50, b.AP50)}${d(r.AP75, b.AP75)}` : '') +
      '</tr>'
    );
  });
  return `<table class="sortable cats"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`;
}

function typeSection(d: ReportData, t: TypeReport): string {
  const base = d.baseline !== undefined;
  return `<section id="${t.iouType}">
<h2>${t.iouType}</h2>
<h3>The 12 COCO stats</h3>
${statsTable(t, base)}
<h3>Precision-recall curves</h3>
<p class="note">From the evaluator's accumulated precision array (maxDets 100), averaged over the categories with GT in each area range${base ? '; solid: model, dashed: baseline' : ''}.</p>
${chart(t, `pr_${t.iouType}`)}
<h3>Error analysis (COCO analyze())</h3>
<p class="note">Cumulative PR curves: C75 and C50 are PR at IoU .75 and .5; Loc at IoU .1 (localisation errors forgiven);
Sim also forgives confusions within the supercategory, Oth confusions with any category, BG all background false positives, FN the missed objects.
The numbers are the areas under each curve. Curves over all categories are their mean, as analyze() plots them: a category
without GT in an area range counts there with precision 0 up to FN.</p>
${errorTable(d, t)}
${chart(t, `errors_${t.iouType}`)}
${chart(t, `errors_worst_${t.iouType}`)}
<h3>Per category</h3>
<p class="note">AP@[.5:.95], AP@.5, AP@.75 (area all, maxDets 100); – where a category has no GT. Click a column to sort.</p>
${chart(t, `ap_diff_${t.iouType}`)}
${categoryTable(t, base)}
</section>`;
}

function gallerySection(d: ReportData): string {
  const g = d.gallery;
  const intro =
    `<p class="note">Images where the model finds fewer objects than the baseline: detections with score ≥ ${g.scoreThr} matched to the GT of their category at box IoU ≥ 0.5; ` +
    `ranked by (baseline found − model found), ties by the model's extra false positives. ${g.candidates} such images, the first ${Math.min(g.max, g.candidates)} shown. ` +
    'Left: model, right: baseline. GT outlines: <span class="k g">found</span> <span class="k m">missed (tinted)</span> <span class="k c">crowd</span>; ' +
    'detections: <span class="k b">matched</span> <span class="k r">false positive</span>.</p>';
  const note = g.note ? `<p class="note">${esc(g.note)}</p>` : '';
  const items = g.entries.map((e) => {
    const gtN = e.model.found.length;
    const cap = `image ${e.imageId}${e.fileName ? ` (${esc(e.fileName)})` : ''}: model found ${e.model.tp}/${gtN}, ${e.model.fp} FP; baseline found ${e.baseline.tp}/${gtN}, ${e.baseline.fp} FP`;
    return e.picture
      ? `<figure class="gal"><a href="${esc(e.picture)}"><img src="${esc(e.picture)}" alt="image ${e.imageId}"></a><figcaption>${cap}</figcaption></figure>`
      : `<li>${cap}</li>`;
  });
  const pics = items.filter((s) => s.startsWith('<figure')).join('\n');
  const list = items.filter((s) => s.startsWith('<li>'));
  return `<section id="gallery"><h2>Where the model loses to the baseline</h2>${note}${g.entries.length ? intro : ''}
<div class="gallery">${pics}</div>${list.length ? `<ul>${list.join('')}</ul>` : ''}</section>`;
}

const CSS = `body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{border-bottom:2px solid #4f86c6;padding-bottom:4px;margin-top:36px}h3{margin-top:24px;font-size:16px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px}
th{background:#f2f5f9;text-align:left}table.sortable th{cursor:pointer}table.sortable th:hover{background:#dde6f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.up{color:#1a7f37}td.down{color:#c5504b}td.lbl{font-family:monospace;font-size:12px;color:#555}
figure{margin:10px 0}figcaption{font-size:12px;color:#555}img{max-width:100%;height:auto}
.note{font-size:13px;color:#555;max-width:1000px}.meta td{border:none;padding:1px 12px 1px 0}
.gallery{display:flex;flex-wrap:wrap;gap:14px}.gallery figure{width:768px}.gallery img{border:1px solid #ccc}
.k{padding:0 5px;border-radius:3px;color:#fff}.k.g{background:#2ecc40}.k.m{background:#ff00ff}.k.c{background:#999}.k.b{background:#1f77b4}.k.r{background:#e41a1c}
nav a{margin-right:14px}`;

const JS = `document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var tb = th.closest('table').tBodies[0], i = th.cellIndex, desc = th.dataset.dir !== 'desc';
    th.dataset.dir = desc ? 'desc' : 'asc';
    var key = function (r) { var c = r.cells[i], v = c.dataset.v; return v === undefined ? c.textContent.toLowerCase() : Number(v); };
    Array.from(tb.rows).sort(function (a, b) { var x = key(a), y = key(b), c = x < y ? -1 : x > y ? 1 : 0; return desc ? -c : c; })
      .forEach(function (r) { tb.appendChild(r); });
  });
});`;

export function renderHtml(d: ReportData): string {
  const side = (s: { name: string; numDetections: number; latencyMs?: number }) =>
    `${esc(s.name)} (${s.numDetections} detections${s.latencyMs !== undefined && Number.isFinite(s.latencyMs) ? `, ${s.latencyMs.toFixed(1)} ms/image` : ''})`;
  const meta = [
    d.gt ? `<tr><td>GT</td><td>${esc(d.gt)} (${d.numImages} images, ${d.numGt} objects)</td></tr>` : `<tr><td>GT</td><td>${d.numImages} images, ${d.numGt} objects</td></tr>`,
    `<tr><td>model</td><td>${side(d.model)}</td></tr>`,
    d.baseline ? `<tr><td>baseline</td><td>${side(d.baseline)}</td></tr>` : '',
    d.command ? `<tr><td>command</td><td><code>${esc(d.command)}</code></td></tr>` : '',
  ].join('');
  const nav = [...d.types.map((t) => `<a href="#${t.iouType}">${t.iouType}</a>`), '<a href="#gallery">gallery</a>', '<a href="report.json">report.json</a>'].join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(d.title)}</title><style>${CSS}</style></head>
<body>
<h1>${esc(d.title)}</h1>
<table class="meta">${meta}</table>
<nav>${nav}</nav>
${d.types.map((t) => typeSection(d, t)).join('\n')}
${gallerySection(d)}
<script>${JS}</script>
</body></html>
`;
}
