// Scenario program: map update (see update_body.ts) as a 'kprobe' program.
import { defineProgram } from '../../program.js';
import { updateBody } from './update_body.js';

export default defineProgram({
  name: 'update_kprobe',
  type: 'kprobe',
  maps: ['m'],
  run: (ctx, maps) => updateBody(ctx, maps['m']!),
});
