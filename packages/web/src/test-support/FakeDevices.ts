// Stand-ins for the browser's camera and microphone in unit tests (happy-dom
// has none): getUserMedia requests the test answers one by one, and a record
// of every track handed out.
export class FakeTrack {
  readyState: 'live' | 'ended' = 'live';
  enabled = true;
  constructor(readonly kind: 'audio' | 'video') {}
  stop() {
    this.readyState = 'ended';
  }
  getSettings() {
    return { deviceId: `${this.kind}-1` };
  }
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

  getUserMedia(constraints: MediaStreamConstraints): Promise<MediaStream> {
    return new Promise((resolve, reject) => {
      this.asks.push({
        constraints,
        grant: () => {
          const tracks = (['audio', 'video'] as const).filter((k) => constraints[k]).map((k) => new FakeTrack(k));
          this.handedOut.push(...tracks);
          resolve(new FakeStream(tracks) as unknown as MediaStream);
        },
        refuse: (name) => reject(new DOMException('no', name)),
      });
    });
  }

  enumerateDevices(): Promise<MediaDeviceInfo[]> {
    return Promise.resolve([]);
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
