// Runtime lifecycle: options, boot, sites, stop, and process exit after stop.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Runtime } from '../../src/runtime/runtime.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('Runtime', () => {
  it('rejects bad options with a message naming the option', async () => {
    await expect(Runtime.start({ cpus: 0 })).rejects.toThrow(/'cpus'/);
    await expect(Runtime.start({ cpus: 65 })).rejects.toThrow(/'cpus'/);
    await expect(Runtime.start({ cpus: 1, memoryBytes: 1000 })).rejects.toThrow(/'memoryBytes'/);
    await expect(Runtime.start({ cpus: 1, bucketLock: 'nope' as 'map_locked' })).rejects.toThrow(/'bucketLock'/);
  });

  it('boots, lists its sites, refuses a second runtime in the same thread, and stops', async () => {
    const rt = await Runtime.start({ cpus: 2, memoryBytes: 16 << 20 });
    try {
      expect(rt.cpus).toBe(2);
      expect(rt.sites()).toContain('cpu.workload.loop');
      await expect(Runtime.start({ cpus: 1, memoryBytes: 16 << 20 })).rejects.toThrow(/another runtime/);
    } finally {
      await rt.stop();
    }
    expect(() => rt.createMap({ type: 'array', keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(/stopped/);
  });

  it('await using stops the runtime', async () => {
    let held: Runtime | undefined;
    {
      await using rt = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
      held = rt;
    }
    const again = await Runtime.start({ cpus: 1, memoryBytes: 16 << 20 });
    await again.stop();
    expect(held).toBeDefined();
  });

  it('a process that starts and stops a runtime exits on its own within 5 s', () => {
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../fixtures/stop_child.mjs', import.meta.url))], {
      cwd: root, encoding: 'utf8', timeout: 15_000, env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('stopped');
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
