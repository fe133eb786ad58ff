/**
 * Times loadCheckpoint on the given files (not committed: generate large ones in /tmp, e.g. a torchvision
 * maskrcnn_resnet50_fpn state dict saved with torch.save). Prints best/median wall time, MB/s, peak RSS.
 *   npx tsx bench/checkpoint_load.ts /tmp/ckbench/*.pth [--repeat 5]
 */
import { statSync } from 'node:fs';
import { loadCheckpoint } from '../checkpoint/load.ts';

const args = process.argv.slice(2);
const ri = args.indexOf('--repeat');
const repeat = ri >= 0 ? Number(args.splice(ri, 2)[1]) : 5;
for (const path of args) {
  const mb = statSync(path).size / 2 ** 20;
  const times: number[] = [];
  let info = '';
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    const ck = await loadCheckpoint(path);
    times.push(performance.now() - t0);
    let bytes = 0;
    for (const t of ck.stateDict.values()) bytes += t.data.byteLength;
    info = `${ck.format}, ${ck.stateDict.size} tensors, ${(bytes / 2 ** 20).toFixed(1)} MiB of tensor data`;
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  const rss = process.memoryUsage().rss / 2 ** 20;
  console.log(
    `${path}: ${mb.toFixed(1)} MiB file; best ${times[0].toFixed(0)} ms, median ${med.toFixed(0)} ms ` +
      `(${(mb / (times[0] / 1000)).toFixed(0)} MiB/s); ${info}; rss now ${rss.toFixed(0)} MiB`,
  );
}
