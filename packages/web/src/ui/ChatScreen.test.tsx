// The chat screen's media controls against LocalMedia on fake devices: what a
// tap does to the real track states, and what the buttons say about it.
import { afterEach, describe, expect, it } from 'vitest';
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { DEFAULT_NUDITY } from '../client/config.js';
import { LocalMedia } from '../client/LocalMedia.js';
import { Session } from '../client/Session.js';
import { FakeDevices, settle } from '../test-support/FakeDevices.js';
import { WithI18n } from '../test-support/i18n.js';
import { ChatScreen } from './ChatScreen.js';

const CAMERAS = [
  { kind: 'videoinput', deviceId: 'front', label: 'Front camera', facingMode: 'user' },
  { kind: 'videoinput', deviceId: 'back', label: 'Back camera', facingMode: 'environment' },
  { kind: 'audioinput', deviceId: 'mic-a', label: 'Microphone A' },
  { kind: 'audioinput', deviceId: 'mic-b', label: 'Headset' },
] as const;

/** A socket that never opens: the screen is shown without a server. */
const idleSocket = () => ({ readyState: 0, send() {}, close() {} }) as unknown as WebSocket;

afterEach(cleanup);

/** These tests are about the viewer's own devices: no classifier. */
const NUDITY_OFF = { ...DEFAULT_NUDITY, mode: 'off' } as const;

async function setup(devices: FakeDevices) {
  const media = new LocalMedia(devices.asMediaDevices());
  const session = new Session({
    config: { matchingUrl: 'http://127.0.0.1:1', signallingUrl: 'http://127.0.0.1:1' },
    media,
    createSocket: idleSocket,
  });
  const got = media.acquire();
  devices.asks.at(-1)!.grant();
  await got;
  await settle();
  render(
    <ChatScreen
      session={session}
      media={media}
      autoNext={false}
      nudity={NUDITY_OFF}
      onAutoNext={() => {}}
      onHome={() => {}}
      onUseText={() => {}}
    />,
    { wrapper: WithI18n },
  );
  return { media, session };
}

const live = (devices: FakeDevices, kind: 'audio' | 'video') => devices.live.filter((t) => t.kind === kind);

describe('ChatScreen media controls', () => {
  it('mute: the microphone track is disabled and the button says how to undo it', async () => {
    const devices = new FakeDevices([...CAMERAS]);
    await setup(devices);
    fireEvent.click(screen.getByRole('button', { name: 'Mute microphone' }));
    expect(live(devices, 'audio').map((t) => t.enabled)).toEqual([false]);
    const unmute = screen.getByRole('button', { name: 'Unmute microphone' });
    expect(unmute.getAttribute('aria-pressed')).toBe('true');
    expect(screen.getByText('You · muted')).toBeTruthy();
    fireEvent.click(unmute);
    expect(live(devices, 'audio').map((t) => t.enabled)).toEqual([true]);
  });

  it('camera off: the video track is disabled (black frames, no renegotiation) and the tile says so', async () => {
    const devices = new FakeDevices([...CAMERAS]);
    await setup(devices);
    fireEvent.click(screen.getByRole('button', { name: 'Turn camera off' }));
    expect(live(devices, 'video').map((t) => t.enabled)).toEqual([false]);
    expect(live(devices, 'video')[0]!.readyState).toBe('live');
    expect(screen.getByRole('button', { name: 'Turn camera on' }).getAttribute('aria-pressed')).toBe('true');
    expect(screen.getAllByText('Camera off').length).toBeGreaterThan(0);
  });

  it('device choice: the menu lists the devices and picking one swaps the track', async () => {
    const devices = new FakeDevices([...CAMERAS]);
    const { media } = await setup(devices);
    fireEvent.click(screen.getByRole('button', { name: 'Choose camera and microphone' }));
    const mic = (await screen.findByLabelText('Microphone')) as HTMLSelectElement;
    expect([...mic.options].map((o) => o.textContent)).toEqual(['Microphone A', 'Headset']);
    fireEvent.change(mic, { target: { value: 'mic-b' } });
    await act(async () => {
      devices.asks.at(-1)!.grant();
      await settle();
    });
    expect(live(devices, 'audio').map((t) => t.deviceId)).toEqual(['mic-b']);
    expect(media.state.microphoneId).toBe('mic-b');
    // Esc closes the menu and focus goes back to its button.
    fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(document.activeElement).toBe(screen.getByRole('button', { name: 'Choose camera and microphone' }));
  });

  it('one tap flips to the back camera, which is not shown mirrored', async () => {
    const devices = new FakeDevices([...CAMERAS]);
    await setup(devices);
    const local = screen.getByTestId('local-video');
    expect(local.className).toContain('mirrored');
    fireEvent.click(screen.getByRole('button', { name: 'Switch between front and back camera' }));
    expect(devices.asks.at(-1)!.constraints.video).toMatchObject({ facingMode: { exact: 'environment' } });
    await act(async () => {
      devices.asks.at(-1)!.grant();
      await settle();
    });
    expect(live(devices, 'video').map((t) => t.deviceId)).toEqual(['back']);
    expect(screen.getByTestId('local-video').className).not.toContain('mirrored');
  });

  it('no switch where there is one camera', async () => {
    await setup(new FakeDevices([CAMERAS[0], CAMERAS[2]]));
    expect(screen.queryByRole('button', { name: 'Switch between front and back camera' })).toBeNull();
  });
});
