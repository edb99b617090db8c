/*
 * sites.ts — the registry of named interrupt windows ("sites").
 *
 * A site is a place in runtime code where a real CPU could take an interrupt or a kprobe could
 * fire (e.g. 'htab.update.locked'). Modules define their sites at load time; the id is a 31-bit
 * FNV-1a hash of the name, so every thread computes the same id without coordination and the
 * injection and attach tables in kernel memory can name sites by id. A collision is detected at
 * definition and is a programming error.
 */

const byId = new Map<number, string>();

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 1) || 1; // positive, never 0 (0 means "no site")
}

/** Define (or look up) the site called `name`; returns its id. */
export function defineSite(name: string): number {
  const id = fnv1a(name);
  const prev = byId.get(id);
  if (prev !== undefined && prev !== name) throw new Error(`site id collision: ${name} vs ${prev}`);
  byId.set(id, name);
  return id;
}

export function siteId(name: string): number | undefined {
  const id = fnv1a(name);
  return byId.get(id) === name ? id : undefined;
}

export function siteName(id: number): string {
  return byId.get(id) ?? (id === 0 ? '' : `site#${id}`);
}

export function allSites(): string[] {
  return [...byId.values()].sort();
}
