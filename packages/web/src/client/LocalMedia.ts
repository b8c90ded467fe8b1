// The camera and microphone. One stream lives across strangers (asking again
// for every `next` would be slow and flicker the camera light); it is released
// on Stop, when the page goes away and whenever text is chosen: a person who
// chose text never has a live camera or microphone.
import { Store } from './Store.js';

export type MediaErrorKind = 'denied' | 'not-found' | 'in-use' | 'insecure' | 'unknown';

export interface MediaProblem {
  readonly kind: MediaErrorKind;
  readonly message: string;
}

export interface Device {
  readonly id: string;
  readonly label: string;
}

/** Which way the camera looks: at the visitor (front) or away (back). */
export type Facing = 'user' | 'environment';

export interface LocalMediaState {
  readonly status: 'off' | 'requesting' | 'ready' | 'error';
  readonly stream: MediaStream | null;
  readonly problem: MediaProblem | null;
  readonly micOn: boolean;
  readonly camOn: boolean;
  readonly cameras: readonly Device[];
  readonly microphones: readonly Device[];
  readonly cameraId: string | null;
  readonly microphoneId: string | null;
  /** The front camera is shown mirrored, as people expect to see themselves; the back one is not. */
  readonly facing: Facing;
}

export type TrackSwap = (kind: 'audio' | 'video', track: MediaStreamTrack) => void;

const initial: LocalMediaState = {
  status: 'off',
  stream: null,
  problem: null,
  micOn: true,
  camOn: true,
  cameras: [],
  microphones: [],
  cameraId: null,
  microphoneId: null,
  facing: 'user',
};

// 640x480 at 30 fps is plenty for a face and cheap to encode on a phone.
const VIDEO: MediaTrackConstraints = {
  facingMode: 'user',
  width: { ideal: 640 },
  height: { ideal: 480 },
  frameRate: { ideal: 30, max: 30 },
};
const AUDIO: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

export function describeMediaError(err: unknown): MediaProblem {
  const name = err instanceof Error || err instanceof DOMException ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return {
        kind: 'denied',
        message:
          'Camera and microphone access is blocked. Allow it in your browser’s site settings and try again, or chat by text instead.',
      };
    case 'NotFoundError':
    case 'OverconstrainedError':
      return { kind: 'not-found', message: 'No camera or microphone was found. You can still chat by text.' };
    case 'NotReadableError':
    case 'AbortError':
      return {
        kind: 'in-use',
        message: 'Your camera could not be started. Another app may be using it; close it and try again.',
      };
    default:
      return { kind: 'unknown', message: 'Your camera could not be started. You can still chat by text.' };
  }
}

export class LocalMedia {
  readonly store = new Store<LocalMediaState>(initial);
  private pending: Promise<MediaStream | null> | null = null;
  private swapListeners = new Set<TrackSwap>();

  constructor(private readonly devices: MediaDevices | undefined = globalThis.navigator?.mediaDevices) {}

  get state(): LocalMediaState {
    return this.store.get();
  }

  /** Resolves with the stream, or null when it cannot be had (the reason is in state.problem). Idempotent. */
  acquire(): Promise<MediaStream | null> {
    const { stream } = this.state;
    if (stream) return Promise.resolve(stream);
    if (this.pending) return this.pending;
    if (!this.devices?.getUserMedia) {
      this.store.update((s) => ({
        ...s,
        status: 'error',
        problem: { kind: 'insecure', message: 'Video chat needs a secure (https) page. You can still chat by text.' },
      }));
      return Promise.resolve(null);
    }
    this.store.update((s) => ({ ...s, status: 'requesting', problem: null }));
    const attempt: Promise<MediaStream | null> = this.open(() => this.pending === attempt).then(
      (stream) => {
        if (this.pending !== attempt) {
          // Released while the browser was still asking: do not keep the camera on.
          stopAll(stream);
          return null;
        }
        this.pending = null;
        for (const t of stream.getAudioTracks()) t.enabled = this.state.micOn;
        for (const t of stream.getVideoTracks()) t.enabled = this.state.camOn;
        this.store.update((s) => ({
          ...s,
          status: 'ready',
          stream,
          cameraId: stream.getVideoTracks()[0]?.getSettings().deviceId ?? null,
          microphoneId: stream.getAudioTracks()[0]?.getSettings().deviceId ?? null,
        }));
        void this.refreshDevices();
        return stream;
      },
      (err: unknown) => {
        // Released meanwhile: the visitor has moved on, there is nothing to report.
        if (this.pending !== attempt) return null;
        this.pending = null;
        this.store.update((s) => ({ ...s, status: 'error', problem: describeMediaError(err) }));
        return null;
      },
    );
    this.pending = attempt;
    return attempt;
  }

  /**
   * Both devices if possible; one of them when the other is missing. No
   * further attempt is made once `current()` is false (released meanwhile).
   */
  private async open(current: () => boolean): Promise<MediaStream> {
    const gum = this.devices!.getUserMedia.bind(this.devices);
    // The camera the visitor last turned to (front unless they flipped it).
    const video: MediaTrackConstraints = { ...VIDEO, facingMode: this.state.facing };
    try {
      return await gum({ video, audio: AUDIO });
    } catch (err) {
      if (!current()) throw err;
      if (!(err instanceof Error || err instanceof DOMException) || err.name !== 'NotFoundError') throw err;
      try {
        return await gum({ video });
      } catch {
        if (!current()) throw err;
        return await gum({ audio: AUDIO });
      }
    }
  }

  /**
   * Stops every track and forgets the stream; a request still in flight is
   * stopped when it lands and asks for nothing more. Idempotent.
   */
  release(): void {
    const now = this.state;
    if (!this.pending && !now.stream && now.status === 'off' && !now.problem) return;
    this.pending = null;
    stopAll(now.stream);
    this.store.update((s) => ({ ...s, status: 'off', stream: null, problem: null }));
  }

  setMic(on: boolean): void {
    for (const t of this.state.stream?.getAudioTracks() ?? []) t.enabled = on;
    this.store.update((s) => ({ ...s, micOn: on }));
  }

  setCamera(on: boolean): void {
    // A disabled track sends black frames: the stranger sees the camera is off, and nothing renegotiates.
    for (const t of this.state.stream?.getVideoTracks() ?? []) t.enabled = on;
    this.store.update((s) => ({ ...s, camOn: on }));
  }

  /** Called with the new track whenever a device is switched, so senders can swap it in. */
  onTrackSwap(fn: TrackSwap): () => void {
    this.swapListeners.add(fn);
    return () => this.swapListeners.delete(fn);
  }

  chooseCamera(deviceId: string): Promise<void> {
    return this.switchDevice('video', deviceId);
  }

  chooseMicrophone(deviceId: string): Promise<void> {
    return this.switchDevice('audio', deviceId);
  }

  /**
   * One tap from the front camera to the back one and back again (phones).
   * The camera in use is stopped first: many phones cannot open both at
   * once. Where no camera answers to the other facing (a laptop with two
   * webcams), the next camera of the list is taken instead.
   */
  async flipCamera(): Promise<void> {
    const old = this.state.stream;
    if (!old || !this.devices) return;
    const facing: Facing = this.state.facing === 'user' ? 'environment' : 'user';
    for (const t of old.getVideoTracks()) t.stop();
    if (await this.swapIn('video', { ...VIDEO, facingMode: { exact: facing } }, old, { facing })) return;
    const { facingMode: _ignored, ...rest } = VIDEO;
    const { cameras, cameraId } = this.state;
    const at = cameras.findIndex((c) => c.id === cameraId);
    const other = cameras[(at + 1) % Math.max(1, cameras.length)];
    if (other && other.id !== cameraId) {
      if (await this.swapIn('video', { ...rest, deviceId: { exact: other.id } }, old, { facing, cameraId: other.id })) return;
    }
    // Nothing else answered: the camera we had, again.
    await this.swapIn('video', { ...VIDEO, facingMode: this.state.facing }, old, {});
  }

  private async switchDevice(kind: 'audio' | 'video', deviceId: string): Promise<void> {
    const old = this.state.stream;
    if (!old || !this.devices) return;
    const base = kind === 'video' ? VIDEO : AUDIO;
    // facingMode would fight an explicit device choice.
    const { facingMode: _ignored, ...rest } = base;
    await this.swapIn(kind, { ...rest, deviceId: { exact: deviceId } }, old, kind === 'video' ? { cameraId: deviceId } : { microphoneId: deviceId });
  }

  /**
   * Asks for one new track and puts it in place of the old one of its kind:
   * senders swap it in (onTrackSwap), the old one stops, and a new stream
   * object makes the preview pick up the change. False when it could not be had.
   */
  private async swapIn(
    kind: 'audio' | 'video',
    constraints: MediaTrackConstraints,
    old: MediaStream,
    patch: Partial<Pick<LocalMediaState, 'cameraId' | 'microphoneId' | 'facing'>>,
  ): Promise<boolean> {
    let fresh: MediaStream;
    try {
      fresh = await this.devices!.getUserMedia({ [kind]: constraints });
    } catch (err) {
      this.store.update((s) => ({ ...s, problem: describeMediaError(err) }));
      return false;
    }
    const track = kind === 'video' ? fresh.getVideoTracks()[0] : fresh.getAudioTracks()[0];
    if (!track || this.state.stream !== old) {
      // Released meanwhile (or an empty answer): keep nothing on.
      stopAll(fresh);
      return this.state.stream !== old;
    }
    track.enabled = kind === 'video' ? this.state.camOn : this.state.micOn;
    const kept = (kind === 'video' ? old.getAudioTracks() : old.getVideoTracks()).slice();
    const replaced = kind === 'video' ? old.getVideoTracks() : old.getAudioTracks();
    for (const fn of this.swapListeners) fn(kind, track);
    for (const t of replaced) t.stop();
    const stream = new MediaStream([...kept, track]);
    const settings = track.getSettings();
    this.store.update((s) => ({
      ...s,
      stream,
      problem: null,
      ...(kind === 'video' && settings.deviceId ? { cameraId: settings.deviceId } : {}),
      ...(kind === 'audio' && settings.deviceId ? { microphoneId: settings.deviceId } : {}),
      ...(kind === 'video' && (settings.facingMode === 'user' || settings.facingMode === 'environment')
        ? { facing: settings.facingMode }
        : {}),
      ...patch,
    }));
    return true;
  }

  async refreshDevices(): Promise<void> {
    if (!this.devices?.enumerateDevices) return;
    try {
      const list = await this.devices.enumerateDevices();
      // An empty label (no permission yet) is named by the screen, in the visitor's language.
      const pick = (kind: MediaDeviceKind): Device[] =>
        list.filter((d) => d.kind === kind && d.deviceId).map((d) => ({ id: d.deviceId, label: d.label }));
      this.store.update((s) => ({ ...s, cameras: pick('videoinput'), microphones: pick('audioinput') }));
    } catch {
      // Device lists are a convenience; the stream itself already works.
    }
  }
}

function stopAll(stream: MediaStream | null): void {
  for (const t of stream?.getTracks() ?? []) t.stop();
}
