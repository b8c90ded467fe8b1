// What the process holds of bytes still coming in (a WebSocket frame or an
// HTTP body not yet whole) costs about those bytes: not a buffer of some 200
// bytes for each read of a client that sends one byte at a time, nor a whole
// 64 KiB read for a few bytes kept of it.

/** A view this much smaller than the buffer under it is copied out of it: the copy costs at most what the view holds. */
const VIEW_SLACK_BYTES = 1_024;
/** Past this many reads held for one frame or body, they are joined into one buffer. */
const HELD_READS_MAX = 16;

/** `view`, or a copy of its own bytes where it is much smaller than the buffer under it. */
export function ownCopy(view: Buffer): Buffer {
  if (view.buffer.byteLength <= view.length + VIEW_SLACK_BYTES) return view;
  const own = Buffer.allocUnsafeSlow(view.length);
  view.copy(own);
  return own;
}

/** Each of `views` as ownCopy makes it, in place. */
export function ownBytes(views: Buffer[]): void {
  for (let i = 0; i < views.length; i++) views[i] = ownCopy(views[i]!);
}

/**
 * `reads`, held until what they carry is whole, in place: past HELD_READS_MAX
 * joined into one buffer of their size (each join copies what is held, at
 * most once every so many reads), and copied out of larger buffers.
 */
export function holdFewReads(reads: Buffer[]): void {
  if (reads.length > HELD_READS_MAX) reads.splice(0, reads.length, joined(reads));
  ownBytes(reads);
}

/** The bytes of `parts` in one buffer of their size. */
function joined(parts: Buffer[]): Buffer {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const part of parts) at += part.copy(out, at);
  return out;
}
