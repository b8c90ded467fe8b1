// The nudity classifier, in a worker of its own so that loading the model and
// classifying frames never hold up the page's main thread, where the call's
// signalling and the chat run (issue 13). The model (nsfwjs's MobileNetV2,
// about 2.6 MB of weights) ships inside the npm package and is bundled with
// the client, so it is fetched from Dyad's own origin like every other file.
// This file itself is fetched only when the first check of a call begins.
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmPlainUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { load, type NSFWJS } from 'nsfwjs/core';
import { MobileNetV2Model } from 'nsfwjs/models/mobilenet_v2';
import { FRAME_SIZE, nudityScore, type FromWorker, type ToWorker } from './nudityMessages.js';

/** The worker's side of postMessage; the DOM library types `self` as a window. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker): void;
}
const scope = self as unknown as WorkerScope;

/**
 * Fastest first. WebGL in a worker needs OffscreenCanvas (WebGL 2) and a GPU;
 * WebAssembly (with SIMD where the browser has it) is many times faster than
 * the plain JavaScript CPU backend, which always works.
 */
const BACKENDS = ['webgl', 'wasm', 'cpu'] as const;

// The WebAssembly binaries are bundled files of Dyad's, not fetched from a CDN.
// The threaded build needs cross-origin isolation, which Dyad's pages do not
// have: it is never fetched, but setWasmPaths wants a path for every binary.
setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmPlainUrl,
  'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedUrl,
});
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);

/**
 * WebGL drawn in software (SwiftShader, llvmpipe: no GPU, or a GPU the
 * browser will not use) compiles the model's shaders for minutes and then runs
 * slower than WebAssembly; there WebAssembly is the better choice.
 */
function hardwareWebGl(): boolean {
  try {
    const gl = new OffscreenCanvas(1, 1).getContext('webgl2');
    if (!gl) return false;
    // The renderer's own name, where the browser tells it (RENDERER alone may say only "WebKit WebGL").
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = `${gl.getParameter(gl.RENDERER)} ${info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : ''}`;
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return !/swiftshader|llvmpipe|softpipe|software/i.test(renderer);
  } catch {
    return false;
  }
}

let model: Promise<{ net: NSFWJS; backend: string }> | null = null;
let canvas: OffscreenCanvas | null = null;
let context: OffscreenCanvasRenderingContext2D | null = null;

async function chooseBackend(): Promise<string> {
  for (const name of BACKENDS) {
    if (name === 'webgl' && !hardwareWebGl()) continue;
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        return name;
      }
    } catch {
      // not available here: try the next one
    }
  }
  throw new Error('no TensorFlow.js backend works in this browser');
}

function loadModel(): Promise<{ net: NSFWJS; backend: string }> {
  model ??= (async () => {
    tf.enableProdMode();
    const backend = await chooseBackend();
    // Only the one model is named, so only its files are bundled and fetched (not the other two nsfwjs ships).
    const net = await load(MobileNetV2Model.name, { modelDefinitions: [MobileNetV2Model], size: FRAME_SIZE });
    return { net, backend };
  })();
  return model;
}

function pixels(frame: ImageBitmap): ImageData {
  canvas ??= new OffscreenCanvas(FRAME_SIZE, FRAME_SIZE);
  context ??= canvas.getContext('2d', { willReadFrequently: true });
  if (!context) throw new Error('no 2d context in the worker');
  context.drawImage(frame, 0, 0, FRAME_SIZE, FRAME_SIZE);
  return context.getImageData(0, 0, FRAME_SIZE, FRAME_SIZE);
}

async function handle(message: ToWorker): Promise<void> {
  if (message.type === 'load') {
    const started = performance.now();
    try {
      const { backend } = await loadModel();
      scope.postMessage({ type: 'ready', backend, loadMs: performance.now() - started });
    } catch (err) {
      scope.postMessage({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  const { id, frame } = message;
  try {
    const { net } = await loadModel();
    const started = performance.now();
    const image = pixels(frame);
    const predictions = await net.classify(image, 5);
    scope.postMessage({ type: 'verdict', id, score: nudityScore(predictions), workMs: performance.now() - started });
  } catch (err) {
    scope.postMessage({ type: 'error', id, message: err instanceof Error ? err.message : String(err) });
  } finally {
    frame.close();
  }
}

scope.onmessage = (event) => void handle(event.data);
