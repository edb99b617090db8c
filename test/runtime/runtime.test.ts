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

  it('a process that starts and stops a runtime exits on its own, without waiting on anything the runtime left behind', () => {
    // The 60 s timeout only keeps a child that never exits from hanging the suite (a lingering
    // handle would keep it alive forever); it is not the claim.
    const r = spawnSync(process.execPath, [fileURLToPath(new URL('../fixtures/stop_child.mjs', import.meta.url))], {
      cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(r.stderr).toBe('');
    expect(r.signal, r.stdout).toBeNull(); // not killed by the timeout: it ended by itself
    expect(r.status).toBe(0);
    const m = /^stopped ([\d.]+)\nexit ([\d.]+)$/.exec(r.stdout.trim());
    expect(m, r.stdout).not.toBeNull();
    const startStopMs = Number(m![1]);
    const tailMs = Number(m![2]);
    // After stop() resolved the event loop ran dry by itself. A timer or handle the runtime left
    // behind would keep the process alive for its whole duration; the baseline is the time the
    // same process took to start and stop the runtime (4 workers), measured in the same run.
    expect(tailMs, r.stdout).toBeLessThan(startStopMs);
  }, 90_000);
});
