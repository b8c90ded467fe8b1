import { describe, expect, it } from 'vitest';
import { FakeDevices, settle } from '../test-support/FakeDevices.js';
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
