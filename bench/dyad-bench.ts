// How many strangers can this box serve? (issue #5)
//
//   npm run bench -- [--quick] [--json] [--only arrival,pairing,relay,capacity,soak,frame,model]
//                    [--out DIR] [--doc docs/BENCHMARKS.md] [--workers N] [--cpu-prof]
//
// Starts real server processes (and a private redis-server, the PeerJS server
// and bare ws servers for comparison) on loopback, drives them from
// several load-generator processes, and prints the figures with the issue's
// targets next to them. Every phase is bounded in time; nothing leaves the
// machine. Results go to DIR/results.json, DIR/report.md and DIR/*.svg.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runArrival } from './lib/arrival.js';
import { runCapacity } from './lib/capacity.js';
import { runChaos } from './lib/chaos.js';
import { load1, Progress, PROFILES, type BenchContext } from './lib/context.js';
import { analyze, flameGraph, formatSummary } from './lib/cpuprofile.js';
import { runFrame } from './lib/frame.js';
import { Workers } from './lib/loadgen.js';
import { runModel } from './lib/model.js';
import { runPairing } from './lib/pairing.js';
import { runRedisWork } from './lib/redis-work.js';
import { addServerEnv, assertBuilt, REPO_ROOT, useServerEntry } from './lib/procs.js';
import { RELAY_TARGETS, runRelay, type RelayTarget } from './lib/relay.js';
import { arrivalBlock, markdown, plots, targets, textSummary, type Results, type RunMeta } from './lib/report.js';
import { runSoak } from './lib/soak.js';
import { TOPOLOGIES, type TopologyName } from './lib/topology.js';

const SECTIONS = ['arrival', 'pairing', 'redis-work', 'relay', 'capacity', 'soak', 'frame', 'model', 'chaos'] as const;
type Section = (typeof SECTIONS)[number];
/** The chaos soak runs only when asked for (--only chaos): half an hour in the full profile. */
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== 'chaos');
/** Hard stop for the whole run, whatever happens inside it. */
const WATCHDOG_MS = { quick: 4 * 60_000, full: 25 * 60_000 } as const;
const DOC_BEGIN = '<!-- bench:begin -->';
const DOC_END = '<!-- bench:end -->';
/** The arrival section's own block: a run of `--only arrival` refreshes it and leaves the block above alone. */
const DOC_ARRIVAL_BEGIN = '<!-- bench:arrival:begin -->';
const DOC_ARRIVAL_END = '<!-- bench:arrival:end -->';

const USAGE = `usage: npm run bench -- [options]
  --quick            small sizes, finishes in a minute or two
  --json             print the results as JSON on stdout (the summary goes to stderr)
  --only LIST        comma-separated sections: ${SECTIONS.join(',')}
                     (default all but chaos, the long chaos soak: npm run bench:chaos)
  --out DIR          where results.json, report.md and the plots go
                     (default docs/bench, or artifacts/bench-quick with --quick)
  --doc FILE         also replace the block between ${DOC_BEGIN} and ${DOC_END} in FILE
                     (the arrival figures go between ${DOC_ARRIVAL_BEGIN} and ${DOC_ARRIVAL_END} when FILE has them)
  --workers N        load-generator processes (default 2)
  --soak-seconds N   length of the churn soak
  --cpu-prof         run the servers under --cpu-prof; write flame graphs to DIR/profiles
  --stores LIST      pairing and arrival set-ups: memory,redis-1,redis-2
                     (default: pairing all in full, memory in quick; arrival memory,redis-1)
  --rates LIST       offered arrivals per second of the pairing steps, or none (only held sessions)
  --relay-targets L  relay servers: ${RELAY_TARGETS.join(',')}
  --redis-log        log Redis commands after each Redis measurement (default in the full profile)
  --server FILE      server entry to run (default packages/server/dist/main.js), for A/B runs
  --server-env LIST  NAME=VALUE pairs, comma-separated, added to every Dyad process's
                     environment, for A/B runs of a setting (WS_NO_BUFFER_UTIL=1, say)
  --render FILE      measure nothing: render a saved results.json (plots, report, --doc) again
`;

interface Options {
  quick: boolean;
  json: boolean;
  only: Section[];
  out: string;
  doc?: string;
  workers?: number;
  soakSeconds?: number;
  cpuProf: boolean;
  server?: string;
  serverEnv?: Record<string, string>;
  stores?: TopologyName[];
  rates?: number[];
  relayTargets?: RelayTarget[];
  redisLog: boolean;
  render?: string;
}

/** A comma-separated list whose every item is one of `allowed`. */
function listOf<T extends string>(option: string, value: string, allowed: readonly T[]): T[] {
  const list = value.split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of list) if (!(allowed as readonly string[]).includes(x)) throw new Error(`${option}: unknown ${JSON.stringify(x)} (one of ${allowed.join(', ')})`);
  return list as T[];
}

function parseOptions(argv: string[]): Options {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      doc: { type: 'string' },
      workers: { type: 'string' },
      'soak-seconds': { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      stores: { type: 'string' },
      rates: { type: 'string' },
      'relay-targets': { type: 'string' },
      'redis-log': { type: 'boolean' },
      server: { type: 'string' },
      'server-env': { type: 'string' },
      render: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const o: Options = {
    quick: v.quick ?? false,
    json: v.json ?? false,
    only: v.only === undefined ? [...DEFAULT_SECTIONS] : listOf('--only', v.only, SECTIONS),
    out: v.out ?? (v.quick ? 'artifacts/bench-quick' : 'docs/bench'),
    doc: v.doc,
    cpuProf: v['cpu-prof'] ?? false,
    redisLog: v['redis-log'] ?? false,
    server: v.server,
    render: v.render,
  };
  if (v.workers !== undefined) {
    o.workers = Number(v.workers);
    if (!Number.isInteger(o.workers) || o.workers < 1 || o.workers > 16) throw new Error('--workers must be 1..16');
  }
  if (v['soak-seconds'] !== undefined) {
    o.soakSeconds = Number(v['soak-seconds']);
    if (!(o.soakSeconds >= 5)) throw new Error('--soak-seconds must be at least 5');
  }
  if (v['server-env'] !== undefined) {
    o.serverEnv = {};
    for (const pair of v['server-env'].split(',')) {
      const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
      if (!m) throw new Error(`--server-env takes NAME=VALUE pairs, not ${JSON.stringify(pair)}`);
      o.serverEnv[m[1]!] = m[2]!;
    }
  }
  if (v.stores !== undefined) o.stores = listOf('--stores', v.stores, TOPOLOGIES);
  if (v['relay-targets'] !== undefined) o.relayTargets = listOf('--relay-targets', v['relay-targets'], RELAY_TARGETS);
  if (v.rates !== undefined) {
    o.rates = v.rates === 'none' ? [] : v.rates.split(',').map(Number);
    if (o.rates.some((r) => !(r > 0 && r <= 50_000))) throw new Error('--rates must be arrivals per second (1..50000) or none');
  }
  return o;
}

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function replaceDocBlock(file: string, body: string, begin = DOC_BEGIN, end = DOC_END): void {
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} has no ${begin} … ${end} block`);
  writeFileSync(file, `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`);
}

/** Replace the doc's blocks: the arrival figures in their own block when the doc has one, the rest in the main block. */
function updateDoc(docFile: string, results: Results, prefix: string, charts: string[]): void {
  const text = readFileSync(docFile, 'utf8');
  const own = results.arrival !== undefined && text.includes(DOC_ARRIVAL_BEGIN) && text.includes(DOC_ARRIVAL_END);
  if (own) replaceDocBlock(docFile, arrivalBlock(results, prefix, charts), DOC_ARRIVAL_BEGIN, DOC_ARRIVAL_END);
  const rest: Results = own ? { ...results, arrival: undefined, targets: results.targets.filter((x) => x.section !== 'arrival') } : results;
  const others = SECTIONS.some((s) => s !== 'arrival' && rest[s] !== undefined);
  if (others || !own) replaceDocBlock(docFile, markdown(rest, prefix, charts));
}

/** Write results.json, report.md, the plots (and the doc block); print the summary. */
function publish(results: Results, opts: Options, outDir: string, progress: Progress): void {
  mkdirSync(outDir, { recursive: true });
  const charts = plots(results);
  for (const [name, svg] of Object.entries(charts)) writeFileSync(path.join(outDir, name), svg);
  writeFileSync(path.join(outDir, 'results.json'), `${JSON.stringify(results, null, 1)}\n`);
  writeFileSync(path.join(outDir, 'report.md'), `# Dyad benchmark report\n\n${markdown(results, '', Object.keys(charts))}`);
  if (opts.doc) {
    const docFile = path.resolve(REPO_ROOT, opts.doc);
    const prefix = `${path.relative(path.dirname(docFile), outDir) || '.'}/`;
    updateDoc(docFile, results, prefix, Object.keys(charts));
  }
  const summary = textSummary(results);
  if (opts.json) {
    process.stderr.write(summary);
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } else {
    process.stdout.write(summary);
  }
  progress.line(`results: ${path.relative(REPO_ROOT, outDir)}/results.json, report.md, ${Object.keys(charts).length} plots${opts.doc ? `; updated ${opts.doc}` : ''}`);
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.render) {
    // Re-render a saved run (after a change to the report, or to publish an earlier run).
    const saved = JSON.parse(readFileSync(path.resolve(opts.render), 'utf8')) as Results;
    const results: Results = { ...saved, targets: targets(saved, PROFILES[saved.meta.profile].pairing.targetRate) };
    publish(results, opts, path.resolve(REPO_ROOT, opts.out), new Progress());
    return;
  }
  if (opts.server) useServerEntry(opts.server);
  if (opts.serverEnv) addServerEnv(opts.serverEnv);
  assertBuilt();
  const profile = structuredClone(PROFILES[opts.quick ? 'quick' : 'full']);
  if (opts.workers) profile.workers = opts.workers;
  if (opts.soakSeconds) profile.soak.durationMs = opts.soakSeconds * 1000;
  if (opts.stores) {
    profile.pairing.topologies = opts.stores;
    profile.arrival.topologies = opts.stores;
  }
  if (opts.rates) profile.pairing.rates = opts.rates;
  if (opts.relayTargets) profile.relay.targets = opts.relayTargets;
  const outDir = path.resolve(REPO_ROOT, opts.out);
  mkdirSync(outDir, { recursive: true });
  const cpuProfDir = opts.cpuProf ? path.join(outDir, 'profiles') : undefined;
  if (cpuProfDir) {
    rmSync(cpuProfDir, { recursive: true, force: true });
    mkdirSync(cpuProfDir, { recursive: true });
  }

  const progress = new Progress();
  // The chaos soak has a bound of its own per run (one Redis, then the Cluster), with time to drain and settle.
  const chaosMs = opts.only.includes('chaos') ? 2 * (profile.chaos.runLimitMs + profile.chaos.settleMs + 2 * 60_000) : 0;
  const watchdogMs = WATCHDOG_MS[profile.name] + chaosMs;
  const watchdog = setTimeout(() => {
    progress.line(`stopping: the run passed its ${(watchdogMs / 60_000).toFixed(0)} min bound`);
    process.exit(3);
  }, watchdogMs);
  watchdog.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

  const started = new Date();
  const loadStart = load1();
  const command =
    `npm run bench --${opts.quick ? ' --quick' : ''}${opts.only.join() !== DEFAULT_SECTIONS.join() ? ` --only ${opts.only.join(',')}` : ''}` +
    `${opts.stores ? ` --stores ${opts.stores.join(',')}` : ''}${opts.cpuProf ? ' --cpu-prof' : ''}`;
  progress.line(`dyad-bench: ${profile.name} profile, sections ${opts.only.join(', ')}, ${profile.workers} load generators, load ${loadStart}`);
  const workers = await Workers.start(profile.workers);
  const ctx: BenchContext = { profile, workers, progress, outDir, cpuProfDir, diagnoseRedis: !opts.quick || opts.redisLog };
  const partial: Omit<Results, 'targets'> = {
    meta: {} as RunMeta,
  };
  const notes: string[] = [];
  const section = async <T>(name: Section, fn: () => Promise<T>): Promise<T | undefined> => {
    if (!opts.only.includes(name)) return undefined;
    try {
      return await fn();
    } catch (err) {
      progress.done();
      const msg = `${name}: failed: ${err instanceof Error ? err.message : String(err)}`;
      progress.line(msg);
      notes.push(msg);
      return undefined;
    }
  };
  try {
    // Arrival first: its latencies are the most sensitive to what earlier sections leave behind.
    partial.arrival = await section('arrival', () => runArrival(ctx));
    partial.pairing = await section('pairing', () => runPairing(ctx));
    partial['redis-work'] = await section('redis-work', () => runRedisWork(ctx));
    partial.relay = await section('relay', () => runRelay(ctx));
    partial.capacity = await section('capacity', () => runCapacity(ctx));
    partial.soak = await section('soak', () => runSoak(ctx));
    partial.frame = await section('frame', async () => {
      progress.watch(() => 'click to first frame: running bench/click-to-frame.ts in Chromium');
      try {
        return await runFrame(profile.frame.timeoutMs, profile.frame.runs);
      } finally {
        progress.unwatch();
      }
    });
    partial.model = await section('model', () => runModel(ctx));
    partial.chaos = await section('chaos', () => runChaos(ctx));
  } finally {
    progress.done();
    await workers.close();
  }

  if (cpuProfDir) {
    partial.profiles = [];
    for (const f of readdirSync(cpuProfDir).filter((x) => x.endsWith('.cpuprofile'))) {
      const file = path.join(cpuProfDir, f);
      const { summary, profile: prof } = analyze(file);
      // Named as in docs/bench: flame-<label>.svg.
      const flame = path.join(cpuProfDir, `flame-${f.replace(/\.cpuprofile$/, '')}.svg`);
      writeFileSync(flame, flameGraph(prof, f));
      partial.profiles.push({ file: path.relative(REPO_ROOT, file), flame: path.relative(REPO_ROOT, flame), top: formatSummary(summary, 15) });
    }
  }

  const finished = new Date();
  const cpuList = cpus();
  if (profile.name === 'quick') notes.push('Quick profile: small sizes and short phases; the full profile gives the figures to quote.');
  if (opts.server) notes.push(`Server: ${opts.server} (not this checkout's build).`);
  partial.meta = {
    profile: profile.name,
    command,
    started: started.toISOString(),
    finished: finished.toISOString(),
    durationSec: (finished.getTime() - started.getTime()) / 1000,
    host: {
      cpus: cpuList.length,
      cpuModel: (cpuList[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim(),
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
    },
    load1: { start: loadStart, end: load1() },
    workers: profile.workers,
    serverCommit: gitCommit(),
    notes,
  };
  const results: Results = { ...partial, targets: targets(partial, profile.pairing.targetRate) };
  publish(results, opts, outDir, progress);
  if (!existsSync(path.join(REPO_ROOT, 'bench/click-to-frame.ts')) && opts.only.includes('frame')) {
    progress.line('click to first frame: bench/click-to-frame.ts not present, reported as not available');
  }
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`dyad-bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
