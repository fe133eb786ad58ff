/** A .safetensors file of a state dict (F32 and I64 tensors), for tests that go through the CLI. */
import type { StateDict } from '../../core/tensor.ts';

export function safetensorsBytes(sd: StateDict): Buffer {
  const header: Record<string, unknown> = {};
  let off = 0;
  const parts: Buffer[] = [];
  for (const [k, t] of sd) {
    const b = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[k] = { dtype: t.data instanceof BigInt64Array ? 'I64' : 'F32', shape: t.shape, data_offsets: [off, off + b.length] };
    parts.push(b);
    off += b.length;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...parts]);
}
