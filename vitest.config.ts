import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: ONNX Runtime sessions already use both, so files run one after another.
    fileParallelism: false,
  },
});
