// Scenario program: map update (see update_body.ts) as a 'perf_event' program.
import { defineProgram } from '../../program.js';
import { updateBody } from './update_body.js';

export default defineProgram({
  name: 'update_nmi',
  type: 'perf_event',
  maps: ['m'],
  run: (ctx, maps) => updateBody(ctx, maps['m']!),
});
