// Stand-ins for the browser's camera and microphone in unit tests (happy-dom
// has none): getUserMedia requests the test answers one by one, and a record
// of every track handed out.
// happy-dom's MediaStream has no getTracks(); every browser has, and LocalMedia uses it.
if (typeof MediaStream === 'function' && !('getTracks' in MediaStream.prototype)) {
  Object.defineProperty(MediaStream.prototype, 'getTracks', {
    value(this: MediaStream) {
      return [...this.getAudioTracks(), ...this.getVideoTracks()];
    },
  });
}

export class FakeTrack {
  readyState: 'live' | 'ended' = 'live';
  enabled = true;
  constructor(
    readonly kind: 'audio' | 'video',
    readonly deviceId = `${kind}-1`,
    readonly facingMode?: 'user' | 'environment',
  ) {}
  stop() {
    this.readyState = 'ended';
  }
  getSettings() {
    return { deviceId: this.deviceId, ...(this.facingMode ? { facingMode: this.facingMode } : {}) };
  }
}

/** A camera or microphone the fake browser has; tracks follow the constraints' deviceId and facingMode. */
export interface FakeDevice {
  readonly kind: 'audioinput' | 'videoinput';
  readonly deviceId: string;
  readonly label: string;
  readonly facingMode?: 'user' | 'environment';
}

export class FakeStream {
  constructor(readonly tracks: FakeTrack[]) {}
  getTracks() {
    return this.tracks;
  }
  getAudioTracks() {
    return this.tracks.filter((t) => t.kind === 'audio');
  }
  getVideoTracks() {
    return this.tracks.filter((t) => t.kind === 'video');
  }
}

export interface Ask {
  readonly constraints: MediaStreamConstraints;
  grant(): void;
  refuse(name: string): void;
}

/** getUserMedia answered by the test, one request at a time; keeps every track it hands out. */
export class FakeDevices {
  readonly asks: Ask[] = [];
  readonly handedOut: FakeTrack[] = [];

  /** Devices for enumerateDevices and for picking tracks by constraint; none: every track is `<kind>-1`. */
  constructor(readonly devices: readonly FakeDevice[] = []) {}

  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream> {
    return new Promise((resolve, reject) => {
      this.asks.push({
        constraints,
        grant: () => {
          const tracks = (['audio', 'video'] as const).filter((k) => constraints[k]).map((k) => this.track(k, constraints[k]));
          this.handedOut.push(...tracks);
          // The DOM's own MediaStream where there is one (happy-dom's holds any tracks), so video elements take it.
          const stream =
            typeof MediaStream === 'function'
              ? new MediaStream(tracks as unknown as MediaStreamTrack[])
              : (new FakeStream(tracks) as unknown as MediaStream);
          resolve(stream);
        },
        refuse: (name) => reject(new DOMException('no', name)),
      });
    });
  }

  /** The track a browser would give for these constraints: the device they name exactly, or the first of the kind. */
  private track(kind: 'audio' | 'video', c: boolean | MediaTrackConstraints | undefined): FakeTrack {
    const wanted = typeof c === 'object' ? c : {};
    const exact = (v: unknown): unknown => (v && typeof v === 'object' && 'exact' in v ? v.exact : v);
    const candidates = this.devices.filter((d) => d.kind === (kind === 'video' ? 'videoinput' : 'audioinput'));
    const id = exact(wanted.deviceId);
    const facing = exact(wanted.facingMode);
    const pick =
      candidates.find((d) => d.deviceId === id) ??
      candidates.find((d) => id === undefined && facing !== undefined && d.facingMode === facing) ??
      candidates[0];
    return new FakeTrack(kind, pick?.deviceId, pick?.facingMode);
  }

  enumerateDevices(): Promise<MediaDeviceInfo[]> {
    return Promise.resolve(this.devices.map((d) => ({ ...d, groupId: '', toJSON: () => d })) as MediaDeviceInfo[]);
  }

  get live(): FakeTrack[] {
    return this.handedOut.filter((t) => t.readyState === 'live');
  }

  asMediaDevices(): MediaDevices {
    return this as unknown as MediaDevices;
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
