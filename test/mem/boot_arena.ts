// The mem tests boot through the shared single-thread arena boot (test/boot_arena.ts).
export { bootArena, type ArenaBootOptions as BootOptions } from '../boot_arena.js';
