// Entry of a CPU worker: expose the control interface; all logic is in src/runtime/cpu_main.ts.
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { cpuControl } from '../src/runtime/cpu_main.js';
import { installErrorTransfer } from '../src/ipc/errors.js';

if (parentPort === null) throw new Error('workers/cpu: must run as a worker thread');
installErrorTransfer();
Comlink.expose(cpuControl, nodeEndpoint(parentPort));
