// The server process seen through the inspector it was started with
// (NODE_OPTIONS=--inspect=127.0.0.1:0): the real heap of the real process,
// without a hook of ours in it.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { RunningServer } from './server.js';

/** A connection to a server's inspector: its heap and its buffers after a full collection. */
export class Inspector {
  private seq = 0;
  private readonly waiting = new Map<number, (r: { result?: unknown; error?: unknown }) => void>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
      if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg);
    });
  }

  static async open(srv: RunningServer): Promise<Inspector> {
    const url = /Debugger listening on (ws:\/\/\S+)/.exec(srv.output())?.[1];
    assert.ok(url, `the server was started with an inspector: ${srv.output().slice(0, 300)}`);
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Inspector(ws);
  }

  private call(method: string, params?: object): Promise<unknown> {
    const id = ++this.seq;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspector: no answer to ${method}`)), 10_000);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        if (r.error) reject(new Error(`inspector: ${method}: ${JSON.stringify(r.error)}`));
        else resolve(r.result);
      });
    });
  }

  /** Bytes of live objects on the heap, after collecting garbage. */
  async heapUsed(): Promise<number> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    return ((await this.call('Runtime.getHeapUsage')) as { usedSize: number }).usedSize;
  }

  /** Bytes of the process's ArrayBuffers (Buffers included), after collecting garbage. */
  async arrayBuffers(): Promise<number> {
    return (await this.memoryUsage()).arrayBuffers;
  }

  /** Bytes of live objects on the heap and of ArrayBuffers, after collecting garbage. */
  async heapAndBuffers(): Promise<number> {
    const m = await this.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  }

  private async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const expression = 'JSON.stringify(process.memoryUsage())';
    const r = (await this.call('Runtime.evaluate', { expression, returnByValue: true })) as { result: { value: string } };
    return JSON.parse(r.result.value) as NodeJS.MemoryUsage;
  }

  close(): void {
    this.ws.close();
  }
}
