// Scenario program: map update (see update_body.ts) as a 'syscall' program.
import { defineProgram } from '../../program.js';
import { updateBody } from './update_body.js';

export default defineProgram({
  name: 'update_task',
  type: 'syscall',
  maps: ['m'],
  run: (ctx, maps) => updateBody(ctx, maps['m']!),
});
