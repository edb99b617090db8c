import { defineConfig } from 'vitest/config';

// Test files start real worker_threads (one per simulated CPU). Running files one at a time
// keeps a 2-core machine from being oversubscribed by several runtimes at once, which would
// make the bounded waits in the runtime fire for reasons that have nothing to do with the test.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
