/** Worker side of `detect(..., { worker: true })`: runs detectInProcess and posts the result back. */
import { parentPort } from 'node:worker_threads';
import { detectInProcess, type DetectOptions, type ImageInput } from './detect.ts';
import { UserError } from '../core/errors.ts';

parentPort!.on('message', async (msg: { id: number; image: ImageInput; options: DetectOptions }) => {
  try {
    const result = await detectInProcess(msg.image, msg.options);
    const transfer = result.detections.flatMap((d) => (d.bitmap ? [d.bitmap.buffer as ArrayBuffer] : []));
    parentPort!.postMessage({ id: msg.id, result }, transfer);
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, error: { message: (err as Error).message, user: err instanceof UserError } });
  }
});
