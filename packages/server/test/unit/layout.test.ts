// The layout's rules, held by reading the imports of every source file: the
// protocol imports nothing of ours, the core no transport, Redis client or
// store, stores are chosen in main.ts alone, the matching and signalling edges
// stay apart, the web client sees only the protocol, and the benchmarks and
// browser tests reach the server only as a process. Imports are read with the
// TypeScript parser: static `import`/`export ... from`, `import x = require()`,
// `import()` and `require()` with a literal, and `import('x')` types. A
// dynamic import without a literal cannot be checked, so it breaks a rule too.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

/** Where the rules look; every file they reach from bench/ and e2e/ is read as well. */
const SOURCE_ROOTS = ['packages/protocol/src', 'packages/server/src', 'packages/web/src', 'bench', 'e2e'];
const SOURCE_FILE = /\.(?:[cm]?ts|tsx|[cm]?js|jsx)$/;
const SKIP_DIRS: ReadonlySet<string> = new Set(['node_modules', 'dist', '.git']);

interface Import {
  /** The module specifier as written; `undefined` for a dynamic import or require without a literal. */
  spec: string | undefined;
  line: number;
  /** `import type` / `export type ... from` / an `import('x')` type: erased, it loads nothing at run time. */
  typeOnly: boolean;
}

/** Every import of a source text, in order. */
function importsOf(fileName: string, text: string): Import[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, fileName.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const out: Import[] = [];
  const add = (node: ts.Node, spec: ts.Node | undefined, typeOnly = false): void => {
    const literal = spec && (ts.isStringLiteral(spec) || ts.isNoSubstitutionTemplateLiteral(spec)) ? spec.text : undefined;
    out.push({ spec: literal, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node, node.moduleSpecifier, node.importClause?.isTypeOnly === true);
    } else if (ts.isExportDeclaration(node)) {
      if (node.moduleSpecifier) add(node, node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Repo-relative, forward slashes. */
const rel = (abs: string): string => path.relative(REPO_ROOT, abs).split(path.sep).join('/');

/** The file a relative specifier names (`.js` written for a `.ts` file, as NodeNext wants), repo-relative. */
function resolveRelative(fromFile: string, spec: string): string {
  const base = path.resolve(REPO_ROOT, path.dirname(fromFile), spec);
  const stem = base.replace(/\.[cm]?js$|\.jsx$/, '');
  const candidates = [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.cts`, path.join(base, 'index.ts'), path.join(base, 'index.tsx')];
  const found = candidates.find((c) => existsSync(c) && statSync(c).isFile());
  return rel(found ?? base);
}

interface Edge {
  /** The importing file, repo-relative. */
  file: string;
  line: number;
  spec: string | undefined;
  typeOnly?: boolean;
  /** For a relative specifier: the file it names, repo-relative. */
  target?: string;
}

const under = (file: string | undefined, dir: string): boolean => file !== undefined && (file === dir || file.startsWith(`${dir}/`));
/** `ws`, `ws/lib/x`: a package and its subpaths. */
const isPackage = (spec: string | undefined, name: string): boolean => spec !== undefined && (spec === name || spec.startsWith(`${name}/`));
const isStoreImplementation = (target: string | undefined): boolean =>
  target !== undefined && (/^packages\/server\/src\/store\/memory(\.[a-z]+)?$/.test(target) || under(target, 'packages/server/src/store/redis'));

interface Rule {
  name: string;
  /** Whether the rule speaks of this importing file. */
  applies(file: string, reachedFromOutside: boolean): boolean;
  /** Why this import breaks the rule, or undefined. */
  broken(edge: Edge): string | undefined;
  /** An import the rule must refuse: proof that it can fail. */
  bad: { file: string; spec: string };
}

/** The harness modules that bench/ and e2e/ may share with the server's tests. */
const SUPPORT_DIRS = ['packages/server/test/support', 'packages/server/test/redis/support'];

const unchecked = (e: Edge): string | undefined => (e.spec === undefined ? 'an import without a literal specifier cannot be checked' : undefined);

const RULES: readonly Rule[] = [
  {
    name: 'packages/protocol/src imports nothing of ours',
    applies: (file) => under(file, 'packages/protocol/src'),
    broken: (e) =>
      unchecked(e) ??
      (e.spec?.startsWith('@dyad/') ? `imports ${e.spec}` : undefined) ??
      (e.target !== undefined && !under(e.target, 'packages/protocol') ? `reaches ${e.target} outside the package` : undefined),
    bad: { file: 'packages/protocol/src/messages.ts', spec: '../../server/src/config.js' },
  },
  {
    name: 'packages/server/src/core never imports ws, node:http, ioredis or a store implementation',
    applies: (file) => under(file, 'packages/server/src/core'),
    broken: (e) =>
      unchecked(e) ??
      (['ws', 'http', 'node:http', 'ioredis'].some((p) => isPackage(e.spec, p)) ? `imports ${e.spec}` : undefined) ??
      (isStoreImplementation(e.target) ? `imports the store implementation ${e.target}` : undefined),
    bad: { file: 'packages/server/src/core/hub.ts', spec: '../store/memory.js' },
  },
  {
    name: 'stores are chosen only in packages/server/src/main.ts',
    applies: (file) => under(file, 'packages/server/src') && file !== 'packages/server/src/main.ts',
    broken: (e) => {
      if (!isStoreImplementation(e.target)) return unchecked(e);
      // An implementation's own modules (the Redis store's Lua and codec) are not a choice of store.
      const sameImplementation = under(e.file, 'packages/server/src/store/redis') && under(e.target, 'packages/server/src/store/redis');
      return sameImplementation ? undefined : `imports the store implementation ${e.target}`;
    },
    bad: { file: 'packages/server/src/matching/service.ts', spec: '../store/redis/index.js' },
  },
  {
    name: 'the matching and signalling edges never import each other',
    applies: (file) => under(file, 'packages/server/src/matching') || under(file, 'packages/server/src/signalling'),
    broken: (e) => {
      const other = under(e.file, 'packages/server/src/matching') ? 'packages/server/src/signalling' : 'packages/server/src/matching';
      return unchecked(e) ?? (under(e.target, other) ? `imports ${e.target}` : undefined);
    },
    bad: { file: 'packages/server/src/signalling/service.ts', spec: '../matching/admin.js' },
  },
  {
    name: 'packages/web/src imports only @dyad/protocol of ours',
    applies: (file) => under(file, 'packages/web/src'),
    broken: (e) =>
      unchecked(e) ??
      (e.spec?.startsWith('@dyad/') && !isPackage(e.spec, '@dyad/protocol') ? `imports ${e.spec}` : undefined) ??
      (e.target !== undefined && !under(e.target, 'packages/web') ? `reaches ${e.target} outside the package` : undefined),
    bad: { file: 'packages/web/src/main.tsx', spec: '@dyad/server' },
  },
  {
    name: 'bench/ and e2e/ reach the server only as a process: of packages/server only its test support modules, and through them never src or dist',
    applies: (file, reachedFromOutside) => under(file, 'bench') || under(file, 'e2e') || reachedFromOutside,
    broken: (e) =>
      unchecked(e) ??
      (isPackage(e.spec, '@dyad/server') ? `imports ${e.spec}` : undefined) ??
      (under(e.target, 'packages/server') && !SUPPORT_DIRS.some((dir) => under(e.target, dir)) ? `imports ${e.target}` : undefined),
    bad: { file: 'bench/lib/redis-diag.ts', spec: '../../packages/server/dist/store/redis/lua.js' },
  },
];

function sourceFiles(dir: string): string[] {
  const abs = path.join(REPO_ROOT, dir);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(abs, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) out.push(...sourceFiles(`${dir}/${entry.name}`));
    } else if (SOURCE_FILE.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      out.push(`${dir}/${entry.name}`);
    }
  }
  return out;
}

const edgeCache = new Map<string, Edge[]>();
function edgesOf(file: string): Edge[] {
  let edges = edgeCache.get(file);
  if (!edges) {
    edges = importsOf(file, readFileSync(path.join(REPO_ROOT, file), 'utf8')).map((imp) => ({
      file,
      line: imp.line,
      spec: imp.spec,
      typeOnly: imp.typeOnly,
      target: imp.spec?.startsWith('.') ? resolveRelative(file, imp.spec) : undefined,
    }));
    edgeCache.set(file, edges);
  }
  return edges;
}

/** Files outside bench/ and e2e/ that they import, directly or through each other (test support modules). */
function reachedFrom(roots: readonly string[]): Set<string> {
  const seen = new Set<string>(roots);
  const queue = [...roots];
  const reached = new Set<string>();
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const e of edgesOf(file)) {
      const t = e.target;
      if (t === undefined || seen.has(t) || !SOURCE_FILE.test(t) || !existsSync(path.join(REPO_ROOT, t))) continue;
      seen.add(t);
      if (!under(t, 'bench') && !under(t, 'e2e')) reached.add(t);
      // What a support module imports counts as well; the server's own code is where the walk stops (a rule names it).
      if (!under(t, 'packages/server/src') && !under(t, 'packages/server/dist')) queue.push(t);
    }
  }
  return reached;
}

function violations(): string[] {
  const files = SOURCE_ROOTS.flatMap(sourceFiles);
  const reached = reachedFrom(files.filter((f) => under(f, 'bench') || under(f, 'e2e')));
  const out: string[] = [];
  for (const file of [...files, ...[...reached].filter((f) => !files.includes(f))]) {
    for (const rule of RULES) {
      if (!rule.applies(file, reached.has(file))) continue;
      for (const e of edgesOf(file)) {
        const why = rule.broken(e);
        if (why) out.push(`${file}:${e.line}: ${why} (${rule.name})`);
      }
    }
  }
  return out;
}

describe('layout', () => {
  it('the parser finds every form of import, and none in comments or strings', () => {
    const text = [
      "import a from 'static-default';",
      "import { b } from './named.js';",
      "import type { C } from 'type-only';",
      "import 'side-effect';",
      "export { d } from 'export-named';",
      "export * from 'export-star';",
      "export type { E } from 'export-type';",
      "import f = require('import-equals');",
      "const g = await import('dynamic');",
      'const h = await import(`dynamic-template`);',
      "const i = require('required');",
      "type J = typeof import('import-type');",
      'const k = await import(name);',
      "// import 'in-a-comment';",
      "/* export * from 'in-a-block-comment'; */",
      "const s = \"import x from 'in-a-string'\";",
    ].join('\n');
    const found = importsOf('sample.ts', text);
    assert.deepEqual(
      found.filter((i) => i.typeOnly).map((i) => i.spec),
      ['type-only', 'export-type', 'import-type'],
    );
    assert.deepEqual(
      found.map((i) => i.spec),
      [
        'static-default',
        './named.js',
        'type-only',
        'side-effect',
        'export-named',
        'export-star',
        'export-type',
        'import-equals',
        'dynamic',
        'dynamic-template',
        'required',
        'import-type',
        undefined,
      ],
    );
  });

  it('reads the imports of the real files: main.ts chooses both stores, the core imports the Store interface', () => {
    const main = edgesOf('packages/server/src/main.ts').map((e) => e.target);
    assert.ok(main.includes('packages/server/src/store/memory.ts'), `main.ts imports store/memory: ${main.join(' ')}`);
    assert.ok(main.includes('packages/server/src/store/redis/index.ts'), `main.ts imports store/redis: ${main.join(' ')}`);
    const hub = edgesOf('packages/server/src/core/hub.ts').map((e) => e.target ?? e.spec);
    assert.ok(hub.includes('packages/server/src/store/store.ts'), `core/hub.ts imports store/store: ${hub.join(' ')}`);
    const files = SOURCE_ROOTS.flatMap(sourceFiles);
    for (const root of SOURCE_ROOTS) assert.ok(files.some((f) => under(f, root)), `source files found under ${root}`);
    assert.ok(files.length > 50, `${files.length} source files`);
    const harness = reachedFrom(['e2e/harness.ts']);
    assert.ok(harness.has('packages/server/test/support/spawn.ts'), `e2e reaches the shared spawner: ${[...harness].join(' ')}`);
  });

  for (const rule of RULES) {
    it(`can fail: ${rule.name}`, () => {
      const { file, spec } = rule.bad;
      assert.ok(rule.applies(file, false), `the rule speaks of ${file}`);
      const edge: Edge = { file, line: 1, spec, target: spec.startsWith('.') ? resolveRelative(file, spec) : undefined };
      assert.ok(rule.broken(edge), `${file} importing ${spec} breaks it`);
      assert.ok(rule.broken({ file, line: 1, spec: undefined }), 'an import that cannot be read breaks it');
    });
  }

  it('holds every rule over every source file', () => {
    assert.deepEqual(violations(), []);
  });
});
