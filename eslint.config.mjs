// ESLint flat config: typescript-eslint's strict type-checked rules, minus the ones that fight a
// kernel simulator's deliberate style. Run by `npm run lint` (and `npm test`'s pretest).
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'bpfsim-report/**', 'coverage/**', 'test-output/**'] },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      // one TypeScript program for every .ts file (src, workers, bench, test, vitest.config.ts)
      parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Kept from strictTypeChecked as they are (the point of the linter): no-floating-promises,
      // no-misused-promises, await-thenable, no-unsafe-{assignment,member-access,call,return,argument},
      // no-explicit-any, switch-exhaustiveness-check (below), no-base-to-string, unbound-method, ...
      '@typescript-eslint/no-floating-promises': ['error', {
        // BpfMap.close()'s promise never rejects (documented: "Ignoring it is fine; await it
        // before comparing memory statistics"), so a bare m.close() is not a lost rejection.
        allowForKnownSafeCalls: [{ from: 'file', name: 'close', path: 'src/maps/bpf_map.ts' }],
      }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', {
        considerDefaultExhaustiveForUnions: true,
        requireDefaultForNonUnion: false,
      }],
      // Forwarding a caught or upstream rejection reason unchanged (reject(e) with e: unknown) is fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Numbers and booleans in templates are what every message and splat prints; nullish,
      // objects, arrays and any stay errors.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `_name` marks an unused parameter/binding kept for a signature or to drop a property.
      '@typescript-eslint/no-unused-vars': ['error', {
        argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_',
        destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true,
      }],

      // Turned off:
      // `I32[i]!` on typed-array reads is the codebase's deliberate pattern (noUncheckedIndexedAccess is on).
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Fights the deliberate `I32[i]!`: even with noUncheckedIndexedAccess on it flags
      // `I32[i] = I32[i]! - 1` once a write has narrowed I32[i]; the rest were harmless redundant casts.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Flags runtime validation of untyped input (CLI args, worker messages, program args) and
      // `a[i] ?? 0` guards on indexed reads, which are defensive on purpose.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // `() => rt.stop()` style arrow shorthands returning void: style only, no bug class here.
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // async without await implements Promise-returning interfaces (fakes, detach()) and turns throws into rejections on purpose.
      '@typescript-eslint/require-await': 'off',
      // Flags deliberate downcasts (a map's BpfMapImpl `as BpfHtab` in tests, stream types) and
      // costs ~13% of the lint time.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // The code has no TypeScript enums (it uses const objects and unions): pure cost, ~10% of the time.
      '@typescript-eslint/no-unsafe-enum-assignment': 'off',
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
    },
  },
  {
    // Plain-JS programs, fixtures and scripts: no type information (they are not in a tsconfig).
    files: ['**/*.mjs', '**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
