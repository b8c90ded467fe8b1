// The arrival section of the report: verdicts against the issue's targets
// (with the Go server's figures from the issue beside them), the table of
// rows against the floor, and the plots.
import { ARRIVAL_LABEL, anomalyTotal, type ArrivalResults, type ArrivalRow, type ArrivalRowName, type CpuPerSession } from './arrival.js';
import { fmtMs } from './context.js';
import type { TargetRow } from './report.js';
import { barChart, lineChart, type LineSeries } from './svg.js';
import { TOPOLOGY_LABEL, type TopologyName } from './topology.js';

/** The Go server's figures on the arrival path, as the issue gives them (not measured here). */
const GO = {
  p50: '0.8-0.9 ms',
  p99: '2.5-3.3 ms',
  pairsPerSec: '368-393',
  bursts: { 100: '53-61 ms', 500: '284-306 ms' } as Record<number, string | undefined>,
};

interface Goal {
  row: ArrivalRowName;
  what: string;
  limit: number;
  unit: 'ms' | 'µs';
  /** The figure judged, or a reason it is not there. */
  pick(r: ArrivalRow): number | string;
  /** The figure ÷ the floor's. */
  ratio?(r: ArrivalRow): number | undefined;
  detail?(r: ArrivalRow): string;
  reference?: string;
}

const serverCpu = (c: CpuPerSession): number => c.server + c.redis;
/** A whole number, or – for a figure not measured (NaN, or null once through JSON). */
const whole = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '–');
const cpuText = (c: CpuPerSession): string => `${whole(c.server)}${c.redis > 0 ? ` Dyad + ${whole(c.redis)} Redis` : ''} µs`;

const p50 = (row: ArrivalRowName, limit: number): Goal => ({
  row,
  what: 'one at a time, p50',
  limit,
  unit: 'ms',
  pick: (r) => r.pairs.p50,
  ratio: (r) => r.vsFloor?.p50,
  reference: GO.p50,
});
const burst = (row: ArrivalRowName, size: number, limit: number): Goal => ({
  row,
  what: `burst of ${size}, all matched`,
  limit,
  unit: 'ms',
  pick: (r) => r.bursts.find((b) => b.size === size)?.medianMs ?? `no burst of ${size} in this profile`,
  ratio: (r) => r.vsFloor?.bursts[r.bursts.findIndex((b) => b.size === size)],
  reference: GO.bursts[size],
});
const cpu = (row: ArrivalRowName, what: string, limit: number): Goal => ({
  row,
  what: `server CPU per arriving session${what} (one at a time)`,
  limit,
  unit: 'µs',
  pick: (r) => serverCpu(r.cpu.pairs),
  ratio: (r) => r.vsFloor?.cpuPairs,
  detail: (r) => `${r.cpu.pairs.redis > 0 ? `(${cpuText(r.cpu.pairs)}) ` : ''}one at a time; in bursts ${cpuText(r.cpu.bursts)}`,
});

const GOALS: Goal[] = [
  p50('memory-one-trip', 0.6),
  { ...p50('memory-one-trip', 2), what: 'one at a time, p99', pick: (r) => r.pairs.p99, ratio: (r) => r.vsFloor?.p99, reference: GO.p99 },
  burst('memory-one-trip', 100, 45),
  burst('memory-one-trip', 500, 230),
  cpu('memory-one-trip', '', 150),
  p50('memory-register', 1.3),
  p50('redis-1-one-trip', 0.9),
  burst('redis-1-one-trip', 500, 280),
  cpu('redis-1-one-trip', ', Dyad + Redis', 300),
];

const TOPOLOGY_OF: Record<ArrivalRowName, TopologyName | undefined> = {
  floor: undefined,
  'floor-uws': undefined,
  'memory-one-trip': 'memory',
  'memory-register': 'memory',
  'redis-1-one-trip': 'redis-1',
  'redis-2-one-trip': 'redis-2',
};

const times = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? `${v.toFixed(2)}×` : '–');
const fmt = (v: number, unit: Goal['unit']): string => (unit === 'ms' ? `${fmtMs(v)} ms` : `${whole(v)} µs`);

/** The verdict rows of the arrival section (`anomaly` wherever a row had one). */
export function arrivalTargets(a: ArrivalResults | undefined): TargetRow[] {
  return GOALS.map((g): TargetRow => {
    const what = `arrival, ${ARRIVAL_LABEL[g.row]}: ${g.what}`;
    const target = `≤ ${g.limit} ${g.unit}`;
    const base = { what, target, reference: g.reference, section: 'arrival' as const };
    const r = a?.rows.find((x) => x.row === g.row);
    if (!r) {
      const topo = TOPOLOGY_OF[g.row];
      const why = topo ? a?.unavailable[topo] : undefined;
      const failed = a?.errors.find((e) => e.includes(ARRIVAL_LABEL[g.row]));
      const measured = why ? `redis mode unavailable: ${why}` : failed ?? (a ? `not run (${topo ? TOPOLOGY_LABEL[topo] : ''} not in --stores)` : 'not run');
      return { ...base, measured, verdict: 'not measured' };
    }
    const v = g.pick(r);
    if (typeof v === 'string') return { ...base, measured: v, verdict: 'not measured' };
    const n = anomalyTotal(r.anomalies);
    const measured =
      `${fmt(v, g.unit)}${g.detail ? ` ${g.detail(r)}` : ''}; ${times(g.ratio?.(r))} the floor` + (n > 0 ? `; ${anomalyText(r)}` : '');
    return { ...base, measured, verdict: n > 0 ? 'anomaly' : Number.isFinite(v) && v <= g.limit ? 'met' : 'missed' };
  });
}

function anomalyText(r: ArrivalRow): string {
  const a = r.anomalies;
  if (anomalyTotal(a) === 0) return '0';
  const parts = [a.doubles && `${a.doubles} matched twice`, a.oddRooms && `${a.oddRooms} odd rooms`, a.lost && `${a.lost} lost`].filter(Boolean);
  const why = Object.entries(a.failed).map(([k, v]) => `${k}: ${v}`);
  return `${parts.join(', ')}${why.length ? ` (${why.join(', ')})` : ''}`;
}

const burstCell = (r: ArrivalRow, size: number): string => {
  const b = r.bursts.find((x) => x.size === size);
  if (!b) return '–';
  const ok = b.runsMs.filter(Number.isFinite);
  return `${fmtMs(b.medianMs)} (${fmtMs(Math.min(...ok))}–${fmtMs(Math.max(...ok))})${ok.length < b.runsMs.length ? ` ${b.runsMs.length - ok.length} runs lost` : ''}`;
};

/** The rows against the floor, and the Go server's figures from the issue as a last row. */
export function arrivalTable(a: ArrivalResults | undefined): { head: string[]; rows: string[][] } | undefined {
  if (!a?.rows.length) return undefined;
  const sizes = [...new Set(a.rows.flatMap((r) => r.bursts.map((b) => b.size)))].sort((x, y) => x - y);
  const runs = a.rows[0]?.bursts[0]?.runsMs.length ?? 0;
  const head = [
    '',
    'one at a time p50 / p99 ms',
    'pairs/s',
    ...sizes.map((k) => `burst ${k}: all matched, ms (median (min–max) of ${runs})`),
    'server µs/session one at a time / bursts',
    'Redis µs/session',
    'latency ÷ floor p50 / p99 / bursts (median of rounds)',
    'CPU ÷ floor one at a time / bursts (median of rounds)',
    'anomalies',
    'load',
  ];
  const rows = a.rows.map((r) => [
    ARRIVAL_LABEL[r.row],
    `${fmtMs(r.pairs.p50)} / ${fmtMs(r.pairs.p99)}`,
    whole(r.pairsPerSec),
    ...sizes.map((k) => burstCell(r, k)),
    `${whole(r.cpu.pairs.server)} / ${whole(r.cpu.bursts.server)}`,
    r.cpu.pairs.redis > 0 || r.cpu.bursts.redis > 0 ? `${whole(r.cpu.pairs.redis)} / ${whole(r.cpu.bursts.redis)}` : '–',
    r.vsFloor ? `${times(r.vsFloor.p50)} / ${times(r.vsFloor.p99)} / ${r.vsFloor.bursts.map(times).join(', ')}` : '1',
    r.vsFloor ? `${times(r.vsFloor.cpuPairs)} / ${times(r.vsFloor.cpuBursts)}` : '1',
    anomalyText(r),
    r.load1.toFixed(2),
  ]);
  const noMs = (s: string | undefined): string => s?.replace(/ ms$/, '') ?? '–';
  rows.push(['Go server (from the issue, not measured here)', `${noMs(GO.p50)} / ${noMs(GO.p99)}`, GO.pairsPerSec, ...sizes.map((k) => noMs(GO.bursts[k])), '–', '–', '–', '–', '–', '–']);
  return { head, rows };
}

/** Each row's ratios to the floor by round (their medians are in the table), then lines about set-ups that could not run. */
export function arrivalNotes(a: ArrivalResults | undefined): string[] {
  const list = (xs: number[]): string => xs.map(times).join(', ');
  const rounds = (a?.rows ?? []).flatMap((r) => {
    const each = r.vsFloor?.rounds;
    if (!each?.length) return [];
    const sizes = r.bursts.map((b, k) => `burst ${b.size} ${list(each.map((x) => x.bursts[k] ?? Number.NaN))}`);
    return [`${ARRIVAL_LABEL[r.row]} ÷ the floor, by round: p50 ${list(each.map((x) => x.p50))}; p99 ${list(each.map((x) => x.p99))}; ${[...sizes, `CPU ${list(each.map((x) => x.cpuPairs))}`].join('; ')}`];
  });
  return [
    ...rounds,
    ...Object.entries(a?.unavailable ?? {}).map(([k, v]) => `${TOPOLOGY_LABEL[k as TopologyName]}: redis mode unavailable (${v})`),
    ...(a?.skipped ?? []),
    ...(a?.errors ?? []),
  ];
}

/** The plots' file names, each with its alternative text. */
export const ARRIVAL_PLOTS: Record<string, string> = {
  'arrival-latency-cdf.svg': 'one pair at a time: second arrival to both matched, each row against the floor',
  'arrival-bursts.svg': 'bursts: time until every visitor is matched',
  'arrival-cpu.svg': 'server CPU per arriving session',
};

export function arrivalPlots(a: ArrivalResults | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!a?.rows.length) return out;
  const names = a.rows.map((r) => ARRIVAL_LABEL[r.row]);
  const series: LineSeries[] = a.rows.map((r) => ({
    name: ARRIVAL_LABEL[r.row],
    points: r.latencyCdf.map((q) => ({ x: q.x, y: q.y * 100 })),
    dashed: r.row === 'floor' || r.row === 'floor-uws',
  }));
  out['arrival-latency-cdf.svg'] = lineChart({
    title: 'One pair at a time: second arrival -> both hold matched',
    xLabel: "milliseconds from the second arrival's first request (log)",
    yLabel: '% of pairs matched within',
    series,
    xLog: true,
    yInclude: [0, 100],
    guides: [
      { x: 0.6, label: 'p50 target (memory)' },
      { x: 2, label: 'p99 target' },
    ],
    note: `Go server (issue): p50 ${GO.p50}, p99 ${GO.p99}; the floor is a bare ws server pairing the two latest arrivals`,
  });
  const sizes = [...new Set(a.rows.flatMap((r) => r.bursts.map((b) => b.size)))].sort((x, y) => x - y);
  out['arrival-bursts.svg'] = barChart({
    title: 'Bursts: visitors arriving at once, time until all are matched',
    yLabel: 'milliseconds (median of the runs)',
    categories: names,
    series: sizes.map((k) => ({ name: `${k} at once`, values: a.rows.map((r) => r.bursts.find((b) => b.size === k)?.medianMs ?? Number.NaN) })),
    guides: [
      ...(sizes.includes(100) ? [{ y: 45, label: 'target 100 at once (memory)' }] : []),
      ...(sizes.includes(500) ? [{ y: 230, label: 'target 500 at once (memory)' }] : []),
    ],
    format: (v) => v.toFixed(0),
    note: `Go server (issue): 100 at once ${GO.bursts[100]}, 500 at once ${GO.bursts[500]}`,
  });
  out['arrival-cpu.svg'] = barChart({
    title: 'Server CPU per arriving session (Dyad or the floor, plus Redis)',
    yLabel: 'µs of CPU per session',
    categories: names,
    series: [
      { name: 'one at a time', values: a.rows.map((r) => serverCpu(r.cpu.pairs)) },
      { name: 'in bursts', values: a.rows.map((r) => serverCpu(r.cpu.bursts)) },
    ],
    guides: [
      { y: 150, label: 'target memory 150 µs' },
      { y: 300, label: 'target Redis 300 µs' },
    ],
    yLog: true,
    format: (v) => v.toFixed(0),
    note: '(log scale) CPU of the server processes (and Redis) over the measured arrivals, from /proc schedstat, ÷ sessions',
  });
  return out;
}
