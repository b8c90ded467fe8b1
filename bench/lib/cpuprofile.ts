// Reads a V8 .cpuprofile (node --cpu-prof): self and total time per function,
// time per package, and a flame graph as SVG. Run on its own:
//   node --import tsx bench/lib/cpuprofile.ts FILE.cpuprofile [--top 25] [--svg out.svg]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FunctionTime {
  name: string;
  where: string;
  group: string;
  selfMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  file: string;
  wallMs: number;
  /** Sampled time not idle. */
  busyMs: number;
  functions: FunctionTime[];
  groups: { group: string; selfMs: number }[];
}

/** Which part of the stack a frame belongs to: a package, Node itself, V8 or Dyad's own code. */
export function groupOf(cf: CallFrame): string {
  const u = cf.url;
  if (u === '') {
    if (cf.functionName === '(garbage collector)') return 'gc';
    if (cf.functionName === '(idle)') return 'idle';
    if (cf.functionName === '(program)') return 'v8/native';
    return 'v8/native';
  }
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/')[0] === 'internal' ? u.slice(5).split('/')[1] ?? 'internal' : u.slice(5)}`;
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 13).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? 'node_modules');
  }
  const pk = /packages\/([^/]+)\/(?:dist|src)\/(.*)$/.exec(u);
  if (pk) return `dyad/${pk[1]}/${pk[2]?.split('/')[0] ?? ''}`.replace(/\.js$/, '');
  return path.basename(u);
}

const keyOf = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'}\u0000${cf.url}:${cf.lineNumber + 1}`;

export function analyze(file: string): { summary: ProfileSummary; profile: Profile } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the gap after it to it.
    const id = profile.samples[i] as number;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const fns = new Map<string, FunctionTime>();
  const groups = new Map<string, number>();
  let idle = 0;
  let all = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    all += us;
    const g = groupOf(n.callFrame);
    if (g === 'idle') idle += us;
    groups.set(g, (groups.get(g) ?? 0) + us);
    // Self time to this function; total time to it and every distinct caller up the stack.
    const seen = new Set<string>();
    let cur: ProfileNode | undefined = n;
    let first = true;
    while (cur) {
      const key = keyOf(cur.callFrame);
      let f = fns.get(key);
      if (!f) {
        f = {
          name: cur.callFrame.functionName || '(anonymous)',
          where: `${cur.callFrame.url.replace(/^.*\/(node_modules|packages)\//, '$1/')}:${cur.callFrame.lineNumber + 1}`,
          group: groupOf(cur.callFrame),
          selfMs: 0,
          totalMs: 0,
        };
        fns.set(key, f);
      }
      if (first) f.selfMs += us / 1000;
      if (!seen.has(key)) {
        f.totalMs += us / 1000;
        seen.add(key);
      }
      first = false;
      const p = parent.get(cur.id);
      cur = p === undefined ? undefined : byId.get(p);
    }
  }
  const functions = [...fns.values()].filter((f) => f.name !== '(root)').sort((a, b) => b.selfMs - a.selfMs);
  return {
    summary: {
      file,
      wallMs: (profile.endTime - profile.startTime) / 1000,
      busyMs: (all - idle) / 1000,
      functions,
      groups: [...groups.entries()].map(([group, us]) => ({ group, selfMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs),
    },
    profile,
  };
}

const COLORS: Record<string, string> = { dyad: '#e4572e', ws: '#29335c', zod: '#f3a712', node: '#669bbc', gc: '#a8c686', v8: '#8d99ae' };
const colorOf = (group: string): string => {
  for (const [k, c] of Object.entries(COLORS)) if (group.startsWith(k)) return c;
  return '#b07bac';
};
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A flame graph (callers below, callees above) of the busy time: idle is left out. */
export function flameGraph(profile: Profile, title: string, width = 1200): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i + 1] ?? 0));
  }
  const total = new Map<number, number>();
  const sumOf = (id: number): number => {
    const n = byId.get(id);
    if (!n) return 0;
    if (n.callFrame.functionName === '(idle)') {
      total.set(id, 0);
      return 0;
    }
    let t = self.get(id) ?? 0;
    for (const c of n.children ?? []) t += sumOf(c);
    total.set(id, t);
    return t;
  };
  const root = profile.nodes[0];
  if (!root) return '';
  const rootTotal = sumOf(root.id) || 1;
  const rowH = 16;
  const rects: string[] = [];
  let maxDepth = 0;
  const minUs = rootTotal * 0.002; // frames under 0.2% of the busy time are not drawn
  const draw = (id: number, x: number, depth: number): void => {
    const n = byId.get(id);
    const t = total.get(id) ?? 0;
    if (!n || t < minUs) return;
    maxDepth = Math.max(maxDepth, depth);
    const w = (t / rootTotal) * width;
    const name = n.callFrame.functionName || '(anonymous)';
    const group = groupOf(n.callFrame);
    const label = `${name} ${group} ${((t / rootTotal) * 100).toFixed(1)}%`;
    rects.push(
      `<g><title>${esc(`${label}\n${n.callFrame.url}:${n.callFrame.lineNumber + 1}`)}</title>` +
        `<rect x="${x.toFixed(2)}" y="{Y${depth}}" width="${Math.max(0.5, w - 0.5).toFixed(2)}" height="${rowH - 1}" fill="${colorOf(group)}"/>` +
        (w > 40 ? `<text x="${(x + 3).toFixed(2)}" y="{T${depth}}" font-size="10" fill="#fff">${esc(label.slice(0, Math.floor(w / 6)))}</text>` : '') +
        '</g>',
    );
    let cx = x;
    for (const c of n.children ?? []) {
      draw(c, cx, depth + 1);
      cx += ((total.get(c) ?? 0) / rootTotal) * width;
    }
  };
  draw(root.id, 0, 0);
  const top = 40;
  const height = top + (maxDepth + 1) * rowH + 30;
  const body = rects
    .join('\n')
    .replace(/\{Y(\d+)\}/g, (_m, d: string) => String(height - 30 - (Number(d) + 1) * rowH))
    .replace(/\{T(\d+)\}/g, (_m, d: string) => String(height - 30 - (Number(d) + 1) * rowH + 11));
  const legend = Object.entries(COLORS)
    .map(([k, c], i) => `<rect x="${10 + i * 90}" y="${height - 20}" width="10" height="10" fill="${c}"/><text x="${24 + i * 90}" y="${height - 11}" font-size="11">${k}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="monospace" viewBox="0 0 ${width} ${height}">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="22" font-size="14" font-family="sans-serif">${esc(title)} (busy ${(rootTotal / 1000).toFixed(0)} ms; width = share of CPU time)</text>
${body}
${legend}
</svg>
`;
}

export function formatSummary(s: ProfileSummary, top = 25): string {
  const pct = (ms: number): string => `${((ms / Math.max(1, s.busyMs)) * 100).toFixed(1)}%`;
  const lines = [`${path.basename(s.file)}: wall ${(s.wallMs / 1000).toFixed(1)} s, busy ${(s.busyMs / 1000).toFixed(2)} s`, '', 'self time by package (share of busy time):'];
  for (const g of s.groups.filter((x) => x.group !== 'idle').slice(0, 15)) lines.push(`  ${pct(g.selfMs).padStart(6)}  ${g.group}`);
  lines.push('', `top ${top} functions by self time:`);
  for (const f of s.functions.slice(0, top)) lines.push(`  ${pct(f.selfMs).padStart(6)} self ${pct(f.totalMs).padStart(6)} total  ${f.name}  ${f.where}`);
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    process.stderr.write('usage: cpuprofile.ts FILE.cpuprofile [--top N] [--svg OUT.svg]\n');
    process.exit(2);
  }
  const topIdx = args.indexOf('--top');
  const svgIdx = args.indexOf('--svg');
  const { summary, profile } = analyze(file);
  process.stdout.write(`${formatSummary(summary, topIdx >= 0 ? Number(args[topIdx + 1]) : 25)}\n`);
  const out = svgIdx >= 0 ? args[svgIdx + 1] : undefined;
  if (out) writeFileSync(out, flameGraph(profile, path.basename(file)));
}
