// The capacity model in the report: the measured costs, what one process and
// one Redis shard carry, the topology for the full scale, and the scaled-down
// check (predicted against measured), as tables for the text summary and the
// Markdown report, and its verdict among the targets.
import { fmtInt, fmtMiB } from './context.js';
import { CHAT_UNIT, MODEL_CHECK, type Cores, type ModelResults, type OpCost } from './model.js';
import type { TargetRow } from './report.js';

export interface ModelTable {
  title: string;
  head: string[];
  rows: string[][];
}

const GiB = 2 ** 30;
const fmtCores = (v: number): string => (Number.isFinite(v) ? v.toFixed(v < 10 ? 3 : 1) : '–');
const fmtUs = (v: number): string => (!Number.isFinite(v) ? '–' : Math.abs(v) < 1 ? v.toFixed(3) : Math.abs(v) < 100 ? v.toFixed(1) : v.toFixed(0));
const fmtRatio = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '–');
const fmtBytes = (v: number): string => (!Number.isFinite(v) ? '–' : v >= GiB ? `${(v / GiB).toFixed(1)} GiB` : fmtMiB(v));
/** A capacity; infinite (null once through JSON) when the unit's cost was lost in the noise of the idle processes. */
const fmtCap = (v: number): string => (Number.isFinite(v) ? fmtInt(v) : 'not bounded by CPU (cost within the noise)');
/** A measured cost; one below zero is the noise of the idle processes' own CPU, and counts as 0 in the model. */
const fmtCost = (v: number): string => (Number.isFinite(v) && v < 0 ? `≈ 0 (${fmtUs(v)}: noise)` : fmtUs(v));
const pctOf = (v: number): string => `${Math.round(v * 100)}%`;
const within = (ratio: number): boolean => Number.isFinite(ratio) && ratio >= MODEL_CHECK.min && ratio <= MODEL_CHECK.max;

/** The formula, in words a reader can check against the tables. */
export function modelFormula(): string[] {
  return [
    'Dyad cores  = P × fixed + held sessions × c_held + pairings/s × c_pairing + frames/s × c_frame + chats/s × c_chat',
    'Redis cores = the same sums with Redis\'s costs; on a Cluster the frames\' share spreads over the shards (lanes), the rest stays on the state shard',
    'P = processes; c = CPU per unit of work, each kind alone at the scaled-down rate on Redis, 2 processes, above the idle processes',
  ];
}

export function modelTables(r: ModelResults): ModelTable[] {
  const c = r.costs;
  const f = r.full;
  const cost = (what: string, at: string, o: OpCost | { dyadUs: number; redisUs: number } | undefined): string[] => [
    what,
    at,
    o ? fmtCost(o.dyadUs) : 'not measured',
    o ? fmtCost(o.redisUs) : 'not measured',
  ];
  const tables: ModelTable[] = [
    {
      title: 'CPU per unit of work (µs of one core), Redis, 2 processes',
      head: ['work', 'measured at', 'Dyad µs', 'Redis µs'],
      rows: [
        cost('fixed: one process with no load, per second', 'idle', c.fixed),
        cost('a held session (paired, idle), per second', `${fmtInt(c.held.at)} held`, c.held),
        cost('a pairing (two one-trip arrivals, matched, closed)', `${fmtInt(c.pairing.at)}/s`, c.pairing),
        cost('a signal frame, members on different processes', `${fmtInt(c.frame.at)}/s`, c.frame),
        cost('a chat message, members on different processes', c.chat ? `${fmtInt(c.chat.at)}/s` : '–', c.chat),
      ],
    },
    {
      title: `What one process, or one Redis shard, carries of each kind of work alone at ${pctOf(f.ceiling)} of a core`,
      head: ['work', 'one process', 'one Redis shard'],
      rows: [
        ['held sessions (people online)', fmtCap(f.perProcess.held), fmtCap(f.perShard.held)],
        ['pairings/s', fmtCap(f.perProcess.pairingsPerSec), fmtCap(f.perShard.pairingsPerSec)],
        ['signal frames/s across processes', fmtCap(f.perProcess.framesPerSec), fmtCap(f.perShard.framesPerSec)],
        ['chat messages/s across processes', fmtCap(f.perProcess.chatsPerSec), fmtCap(f.perShard.chatsPerSec)],
      ],
    },
  ];
  const p = f.predicted.parts;
  const row = (what: string, x: Cores): string[] => [what, fmtCores(x.dyad), fmtCores(x.redis)];
  tables.push({
    title: `Full scale: ${fmtInt(f.scale.held)} online, ${fmtInt(f.scale.pairingsPerSec)} pairings/s, ${fmtInt(f.scale.framesPerSec)} signal frames/s`,
    head: ['', 'Dyad cores', 'Redis cores'],
    rows: [
      row(`${fmtInt(f.scale.held)} held sessions`, p.held),
      row(`${fmtInt(f.scale.pairingsPerSec)} pairings/s`, p.pairings),
      row(`${fmtInt(f.scale.framesPerSec)} frames/s (all counted as across processes)`, p.frames),
      row(`fixed, ${f.processes} processes`, p.fixed),
      row('total', f.predicted),
      [
        `topology at ≤ ${pctOf(f.ceiling)} of a core each`,
        `${f.processes} processes`,
        `${f.shardsIfSpread} shard${f.shardsIfSpread > 1 ? 's' : ''} if spread; the state shard (all but the relayed frames) needs ` +
          `${pctOf(f.stateShardCores)} of a core, ${f.stateShardCores <= f.ceiling ? 'fits' : 'does not fit'}`,
      ],
      [
        'memory',
        `${fmtBytes(f.memory.dyadBytes)} (${fmtBytes(f.memory.perProcessBytes)} and ${fmtInt(f.memory.socketsPerProcess)} sockets per process)`,
        fmtBytes(f.memory.redisBytes),
      ],
      ...(f.chatUnit ? [row(`each ${fmtInt(CHAT_UNIT)} chat messages/s adds`, f.chatUnit)] : []),
    ],
  });
  const k = r.check;
  if (k) {
    tables.push({
      title: `Check: the mix at once (Redis, 2 processes); the prediction is made from the rates the servers counted`,
      head: ['', 'asked', 'counted', 'Dyad cores predicted / measured', 'Redis cores predicted / measured'],
      rows: [
        ['held sessions', fmtInt(k.nominal.held), fmtInt(k.measured.held), `${fmtCores(k.predicted.parts.held.dyad)}`, `${fmtCores(k.predicted.parts.held.redis)}`],
        ['pairings/s', fmtInt(k.nominal.pairingsPerSec), fmtInt(k.measured.pairingsPerSec), fmtCores(k.predicted.parts.pairings.dyad), fmtCores(k.predicted.parts.pairings.redis)],
        ['signal frames/s', fmtInt(k.nominal.framesPerSec), fmtInt(k.measured.framesPerSec), fmtCores(k.predicted.parts.frames.dyad), fmtCores(k.predicted.parts.frames.redis)],
        ['fixed, 2 processes', '', '', fmtCores(k.predicted.parts.fixed.dyad), fmtCores(k.predicted.parts.fixed.redis)],
        ['total', '', '', `${fmtCores(k.predicted.dyad)} / ${fmtCores(k.cores.dyad)}`, `${fmtCores(k.predicted.redis)} / ${fmtCores(k.cores.redis)}`],
        ['measured ÷ predicted', '', '', fmtRatio(k.ratio.dyad), fmtRatio(k.ratio.redis)],
      ],
    });
  }
  return tables;
}

/** Lines under the tables: how the run went and what the figures leave out. */
export function modelNotes(r: ModelResults): string[] {
  const c = r.costs;
  const out = [
    `memory per held session: Dyad ${(c.memory.dyadPerHeld / 1024).toFixed(1)} KiB RSS after GC, Redis ${(c.memory.redisPerHeld / 1024).toFixed(1)} KiB; ` +
      `one process with nothing held ${fmtMiB(c.memory.processBase)}`,
  ];
  const w = r.windows;
  const loads = Object.entries(w).map(([k, v]) => `${k} ${v.load1.toFixed(2)}`);
  if (loads.length) out.push(`1-minute load average after each window: ${loads.join(', ')}`);
  const k = r.check;
  if (k) {
    out.push(
      `mixed load: relay latency p50 ${k.relayLatency.p50.toFixed(2)} ms, p99 ${k.relayLatency.p99.toFixed(2)} ms; ` +
        `errors ${Object.keys(k.errors).length ? JSON.stringify(k.errors) : 'none'}; measured ÷ predicted, Dyad and Redis together, ${fmtRatio(k.ratio.total)}`,
    );
  }
  for (const e of r.errors) out.push(`failed: ${e}`);
  return out;
}

export function modelTarget(r: ModelResults | undefined, failed?: string): TargetRow {
  const what = 'capacity model: cores of a scaled-down mixed load (Redis, 2 processes), measured ÷ predicted';
  const target = `${MODEL_CHECK.min.toFixed(2)}-${MODEL_CHECK.max.toFixed(2)} (an upper bound), Dyad and Redis`;
  const k = r?.check;
  if (!r || !k) return { what, target, measured: failed ?? r?.errors.join('; ') ?? 'not run', verdict: 'not measured' };
  const f = r.full;
  return {
    what,
    target,
    measured:
      `Dyad ${fmtRatio(k.ratio.dyad)} (${fmtCores(k.predicted.dyad)} predicted, ${fmtCores(k.cores.dyad)} measured), ` +
      `Redis ${fmtRatio(k.ratio.redis)} (${fmtCores(k.predicted.redis)}, ${fmtCores(k.cores.redis)}); ` +
      `full scale: ${f.processes} processes, Redis ${pctOf(f.stateShardCores)} of a core on the state shard`,
    verdict: within(k.ratio.dyad) && within(k.ratio.redis) ? 'met' : 'missed',
  };
}
