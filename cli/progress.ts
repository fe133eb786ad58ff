/**
 * Progress of a run over images on stderr: a cli-progress bar with images/s and ETA on a TTY, else a plain
 * line every 10 % (and at the end), so logs and CI output stay readable.
 */
import cliProgress from 'cli-progress';

export interface ImageProgress {
  update(done: number, total: number, skipped: number): void;
  stop(): void;
}

function eta(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  return m ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

/** Images/s counts only images run by this process (resumed ones are skipped in no time). */
export function imageProgress(label: string, stream: NodeJS.WriteStream = process.stderr): ImageProgress {
  const t0 = performance.now();
  let bar: cliProgress.SingleBar | undefined;
  let lastDecile = -1;
  const rate = (done: number, skipped: number) => (done - skipped) / Math.max(1e-9, (performance.now() - t0) / 1000);
  return {
    update(done, total, skipped) {
      const r = rate(done, skipped);
      const payload = { rate: r.toFixed(2), left: eta((total - done) / r) };
      if (stream.isTTY) {
        if (!bar) {
          bar = new cliProgress.SingleBar({
            stream,
            format: `${label} |{bar}| {value}/{total} images | {rate} img/s | ETA {left}`,
            hideCursor: true,
            clearOnComplete: false,
          }, cliProgress.Presets.shades_classic);
          bar.start(total, done, payload);
        } else bar.update(done, payload);
        return;
      }
      const decile = Math.floor((10 * done) / Math.max(1, total));
      if (decile !== lastDecile || done === total) {
        lastDecile = decile;
        stream.write(`${label}: ${done}/${total} images, ${payload.rate} img/s, ETA ${payload.left}\n`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}
