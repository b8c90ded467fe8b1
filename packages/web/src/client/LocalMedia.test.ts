import { describe, expect, it } from 'vitest';
import { FakeDevices, settle } from '../test-support/FakeDevices.js';
import type { FakeTrack } from '../test-support/FakeDevices.js';
import { LocalMedia } from './LocalMedia.js';

describe('LocalMedia', () => {
  it('release stops every track and forgets the stream', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const got = media.acquire();
    devices.asks[0]!.grant();
    expect(await got).not.toBeNull();
    expect(devices.live).toHaveLength(2);
    media.release();
    expect(devices.live).toEqual([]);
    expect(media.state).toMatchObject({ status: 'off', stream: null, problem: null });
  });

  it('a stream that lands after release is stopped at once and not kept', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const got = media.acquire();
    media.release();
    devices.asks[0]!.grant();
    expect(await got).toBeNull();
    expect(devices.handedOut).toHaveLength(2);
    expect(devices.live).toEqual([]);
    expect(media.state).toMatchObject({ status: 'off', stream: null, problem: null });
  });

  it('released while the first request is failing: no fallback request is made and no problem is shown', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const got = media.acquire();
    media.release();
    devices.asks[0]!.refuse('NotFoundError');
    await settle();
    expect(devices.asks).toHaveLength(1);
    expect(await got).toBeNull();
    expect(media.state).toMatchObject({ status: 'off', stream: null, problem: null });
  });

  it('a missing device still falls back to the other one while the request is wanted', async () => {
    const devices = new FakeDevices();
    const media = new LocalMedia(devices.asMediaDevices());
    const got = media.acquire();
    devices.asks[0]!.refuse('NotFoundError');
    await settle();
    expect(devices.asks.map((a) => Object.keys(a.constraints))).toEqual([['video', 'audio'], ['video']]);
    devices.asks[1]!.grant();
    expect((await got)?.getTracks()).toHaveLength(1);
    expect(media.state.status).toBe('ready');
  });
});

describe('LocalMedia: mute, camera off, device choice and the front/back switch', () => {
  const PHONE_CAMERAS = [
    { kind: 'videoinput', deviceId: 'front', label: 'Front camera', facingMode: 'user' },
    { kind: 'videoinput', deviceId: 'back', label: 'Back camera', facingMode: 'environment' },
    { kind: 'audioinput', deviceId: 'mic-a', label: 'Microphone A' },
    { kind: 'audioinput', deviceId: 'mic-b', label: 'Headset' },
  ] as const;

  async function ready(devices: FakeDevices): Promise<LocalMedia> {
    const media = new LocalMedia(devices.asMediaDevices());
    const got = media.acquire();
    devices.asks.at(-1)!.grant();
    await got;
    await settle();
    return media;
  }

  const liveOf = (devices: FakeDevices, kind: 'audio' | 'video') => devices.live.filter((t) => t.kind === kind);

  it('mute and camera off disable the tracks (nothing renegotiates) and hold for a stream asked for later', async () => {
    const devices = new FakeDevices([...PHONE_CAMERAS]);
    const media = await ready(devices);
    media.setMic(false);
    media.setCamera(false);
    expect(liveOf(devices, 'audio').map((t) => t.enabled)).toEqual([false]);
    expect(liveOf(devices, 'video').map((t) => t.enabled)).toEqual([false]);
    expect(media.state).toMatchObject({ micOn: false, camOn: false });
    // Released and asked for again (the next search): still muted, still dark.
    media.release();
    const again = media.acquire();
    devices.asks.at(-1)!.grant();
    await again;
    expect(liveOf(devices, 'audio').map((t) => t.enabled)).toEqual([false]);
    expect(liveOf(devices, 'video').map((t) => t.enabled)).toEqual([false]);
    media.setMic(true);
    media.setCamera(true);
    expect(devices.live.every((t) => t.enabled)).toBe(true);
  });

  it('device choice: the chosen microphone exactly, handed to the call, the old one stopped, the camera kept', async () => {
    const devices = new FakeDevices([...PHONE_CAMERAS]);
    const media = await ready(devices);
    expect(media.state.microphones.map((d) => d.id)).toEqual(['mic-a', 'mic-b']);
    const swaps: [string, FakeTrack][] = [];
    media.onTrackSwap((kind, track) => swaps.push([kind, track as unknown as FakeTrack]));
    const camera = liveOf(devices, 'video')[0];
    media.setMic(false);
    const chosen = media.chooseMicrophone('mic-b');
    expect(devices.asks.at(-1)!.constraints.audio).toMatchObject({ deviceId: { exact: 'mic-b' } });
    devices.asks.at(-1)!.grant();
    await chosen;
    expect(swaps.map(([k, t]) => [k, t.deviceId])).toEqual([['audio', 'mic-b']]);
    expect(swaps[0]![1].enabled).toBe(false);
    expect(liveOf(devices, 'audio').map((t) => t.deviceId)).toEqual(['mic-b']);
    expect(liveOf(devices, 'video')).toEqual([camera]);
    expect(media.state.microphoneId).toBe('mic-b');
    expect(media.state.stream!.getVideoTracks()).toEqual([camera]);
    expect(media.state.stream!.getAudioTracks()).toEqual([swaps[0]![1]]);
  });

  it('one tap flips to the back camera and back: the old camera stops first, the call gets the new track', async () => {
    const devices = new FakeDevices([...PHONE_CAMERAS]);
    const media = await ready(devices);
    expect(media.state).toMatchObject({ facing: 'user', cameraId: 'front' });
    const swaps: string[] = [];
    media.onTrackSwap((kind, track) => swaps.push(`${kind}:${track.getSettings().deviceId}`));
    const flipped = media.flipCamera();
    // Phones cannot open both cameras: the front one is off before the back one is asked for.
    expect(liveOf(devices, 'video')).toEqual([]);
    expect(devices.asks.at(-1)!.constraints.video).toMatchObject({ facingMode: { exact: 'environment' } });
    devices.asks.at(-1)!.grant();
    await flipped;
    expect(media.state).toMatchObject({ facing: 'environment', cameraId: 'back', problem: null });
    expect(liveOf(devices, 'video').map((t) => t.deviceId)).toEqual(['back']);
    const back = media.flipCamera();
    devices.asks.at(-1)!.grant();
    await back;
    expect(media.state).toMatchObject({ facing: 'user', cameraId: 'front' });
    expect(swaps).toEqual(['video:back', 'video:front']);
  });

  it('the facing chosen is the one asked for when the camera comes back', async () => {
    const devices = new FakeDevices([...PHONE_CAMERAS]);
    const media = await ready(devices);
    const flipped = media.flipCamera();
    devices.asks.at(-1)!.grant();
    await flipped;
    media.release();
    void media.acquire();
    expect(devices.asks.at(-1)!.constraints.video).toMatchObject({ facingMode: 'environment' });
  });

  it('where no camera faces the other way, the next camera of the list is taken', async () => {
    const devices = new FakeDevices([
      { kind: 'videoinput', deviceId: 'cam-1', label: 'USB camera' },
      { kind: 'videoinput', deviceId: 'cam-2', label: 'Built-in camera' },
    ]);
    const media = await ready(devices);
    expect(media.state.cameraId).toBe('cam-1');
    const flipped = media.flipCamera();
    devices.asks.at(-1)!.refuse('OverconstrainedError');
    await settle();
    expect(devices.asks.at(-1)!.constraints.video).toMatchObject({ deviceId: { exact: 'cam-2' } });
    devices.asks.at(-1)!.grant();
    await flipped;
    expect(media.state).toMatchObject({ cameraId: 'cam-2', problem: null });
    expect(liveOf(devices, 'video').map((t) => t.deviceId)).toEqual(['cam-2']);
  });

  it('released while a new camera is being asked for: nothing stays on', async () => {
    const devices = new FakeDevices([...PHONE_CAMERAS]);
    const media = await ready(devices);
    const chosen = media.chooseCamera('back');
    media.release();
    devices.asks.at(-1)!.grant();
    await chosen;
    expect(devices.live).toEqual([]);
    expect(media.state.stream).toBeNull();
  });
});
