// Click-to-first-frame in real Chromium, measured by bench/click-to-frame.ts
// (the web client's own benchmark); this runs it as it is and reads its
// figures from what it prints.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './procs.js';

const SCRIPT = path.join(REPO_ROOT, 'bench/click-to-frame.ts');

export interface FrameResults {
  available: boolean;
  reason?: string;
  /** Milliseconds, where the script printed them. */
  p50?: number;
  p95?: number;
  p99?: number;
  max?: number;
  runs?: number;
  command: string;
  /** The last lines it printed, as evidence. */
  output: string[];
}

/** Find p50/p95/p99 in the script's JSON (any depth) or text; values in ms unless written in s. */
export function parseFrameOutput(text: string): Pick<FrameResults, 'p50' | 'p95' | 'p99' | 'max' | 'runs'> {
  const out: Pick<FrameResults, 'p50' | 'p95' | 'p99' | 'max' | 'runs'> = {};
  const fromJson = (v: unknown, depth = 0): boolean => {
    if (!v || typeof v !== 'object' || depth > 5) return false;
    const o = v as Record<string, unknown>;
    const num = (k: string): number | undefined => (typeof o[k] === 'number' ? (o[k] as number) : undefined);
    const seconds = Object.keys(o).some((k) => /_s$|Sec|seconds/i.test(k)) && !Object.keys(o).some((k) => /ms/i.test(k));
    const pick = (q: string): number | undefined => {
      for (const k of Object.keys(o)) if (new RegExp(`^p${q}(ms|_ms|Ms)?$`, 'i').test(k) && num(k) !== undefined) return num(k);
      return undefined;
    };
    const p50 = pick('50') ?? (typeof o.median === 'number' ? o.median : undefined);
    if (p50 !== undefined) {
      const scale = seconds ? 1000 : 1;
      out.p50 = p50 * scale;
      const p95 = pick('95');
      const p99 = pick('99');
      if (p95 !== undefined) out.p95 = p95 * scale;
      if (p99 !== undefined) out.p99 = p99 * scale;
      const n = num('n') ?? num('runs') ?? num('count') ?? num('samples');
      if (n !== undefined) out.runs = n;
      return true;
    }
    return Object.values(o).some((x) => fromJson(x, depth + 1));
  };
  const lines = text.split('\n').map((l) => l.trim());
  for (const candidate of [text.trim(), ...lines.filter((l) => l.startsWith('{')).reverse()]) {
    try {
      if (fromJson(JSON.parse(candidate))) return out;
    } catch {
      // not JSON; try the next candidate
    }
  }
  for (const q of ['50', '95', '99'] as const) {
    const re = new RegExp(`p${q}\\D{0,4}?(\\d+(?:\\.\\d+)?)\\s*(ms|s)\\b`, 'gi');
    let m: RegExpExecArray | null;
    let last: RegExpExecArray | null = null;
    while ((m = re.exec(text))) last = m;
    if (last?.[1]) out[`p${q}`] = Number(last[1]) * (last[2]?.toLowerCase() === 's' ? 1000 : 1);
  }
  const max = /\bmax\s*(\d+(?:\.\d+)?)\s*(ms)?/i.exec(text);
  if (max?.[1]) out.max = Number(max[1]);
  const runs = /(\d+)\s+(?:runs|trials|samples)\b/i.exec(text) ?? /\bn\s*=\s*(\d+)/.exec(text);
  if (runs?.[1]) out.runs = Number(runs[1]);
  return out;
}

export async function runFrame(timeoutMs: number, runs: number): Promise<FrameResults> {
  // Run it the way its own npm script does (that script gives it a private
  // network namespace).
  const command = `RUNS=${runs} npm run bench:frame`;
  if (!existsSync(SCRIPT)) return { available: false, reason: 'bench/click-to-frame.ts is not in this checkout', command, output: [] };
  const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const script = pkg.scripts?.['bench:frame'];
  if (!script || !script.includes('click-to-frame')) {
    return { available: false, reason: 'package.json has no bench:frame script that runs bench/click-to-frame.ts', command, output: [] };
  }
  const { code, text } = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn('npm', ['run', '--silent', 'bench:frame'], {
      cwd: REPO_ROOT,
      // The report's figure is the default setting's (the nudity filter on); the
      // classifier's own cost is measured by bench:frame run alone.
      env: { ...process.env, RUNS: String(runs), NUDITY_FILTERS: process.env.NUDITY_FILTERS ?? 'blur-on-detect', SOAK_CHECKS: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => (buf += d.toString()));
    child.stderr.on('data', (d: Buffer) => (buf += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve({ code: c, text: buf });
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, text: `${buf}\n${err.message}` });
    });
  });
  const output = text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '' && !l.includes('unexpected operator'))
    .slice(-8);
  const figures = parseFrameOutput(text);
  if (figures.p50 === undefined) {
    return { available: false, reason: `no figures in its output (exit ${code}): ${output[output.length - 1] ?? ''}`, command, output };
  }
  return { available: true, ...figures, command, output };
}
