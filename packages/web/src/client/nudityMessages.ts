// What the page and the nudity worker say to each other, and how a frame's
// classes become one score. Imports nothing, so the page can use it without
// pulling the model in.

/** MobileNetV2's input: frames are scaled to this square before they leave the page. */
export const FRAME_SIZE = 224;

export type ToWorker =
  | { readonly type: 'load' }
  /** `frame` is transferred, and closed by the worker. */
  | { readonly type: 'classify'; readonly id: number; readonly frame: ImageBitmap };

export type FromWorker =
  | { readonly type: 'ready'; readonly backend: string; readonly loadMs: number }
  | { readonly type: 'failed'; readonly message: string }
  /** `workMs`: the worker's time on this frame (pixels, inference, reading the result). */
  | { readonly type: 'verdict'; readonly id: number; readonly score: number; readonly workMs: number }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

/** nsfwjs's classes that count as nudity; `Sexy` (swimwear, bare chests) and `Drawing` do not. */
const NUDITY_CLASSES: ReadonlySet<string> = new Set(['Porn', 'Hentai']);

/** The probability, 0 to 1, that the frame shows nudity: that of the classes which count, together. */
export function nudityScore(predictions: readonly { className: string; probability: number }[]): number {
  let score = 0;
  for (const p of predictions) if (NUDITY_CLASSES.has(p.className)) score += p.probability;
  return Math.min(1, Math.max(0, score));
}
