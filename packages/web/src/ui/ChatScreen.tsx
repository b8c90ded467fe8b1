import { useCallback, useEffect, useRef, useState } from 'react';
import type { ReactElement } from 'react';
import type { NuditySettings } from '../client/config.js';
import type { LocalMedia } from '../client/LocalMedia.js';
import type { Session } from '../client/Session.js';
import { statusText } from '../client/state.js';
import type { Phase } from '../client/state.js';
import { ChatPanel } from './ChatPanel.js';
import { DeviceMenu } from './DeviceMenu.js';
import { useStore } from './hooks.js';
import { Icon, type IconName } from './icons.js';
import { NudityShield, useNudityGuard } from './NudityShield.js';
import { ReportDialog } from './ReportDialog.js';
import { Video } from './Video.js';

/** A microphone or camera switch: pressed while the device is off; label and icon say what a click does and what is on. */
function DeviceToggle(props: {
  on: boolean;
  /** [while on, while off] */
  labels: [string, string];
  icons: [IconName, IconName];
  onToggle: () => void;
}): ReactElement {
  const label = props.on ? props.labels[0] : props.labels[1];
  return (
    <button
      type="button"
      className={`btn btn-icon${props.on ? '' : ' btn-off'}`}
      aria-pressed={!props.on}
      aria-label={label}
      title={label}
      onClick={props.onToggle}
    >
      <Icon name={props.on ? props.icons[0] : props.icons[1]} />
    </button>
  );
}

/** Esc must be pressed twice within this time to skip a stranger, so a stray key does not. */
export const ESC_CONFIRM_MS = 3_000;

/** Esc twice skips the current stranger; once starts a new chat after one ended. */
function useEscape(phase: Phase, enabled: boolean, next: () => void): boolean {
  const [armed, setArmedState] = useState(false);
  // The listener reads a ref: a second press can land before React has re-rendered.
  const armedRef = useRef(false);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const setArmed = useCallback((on: boolean) => {
    armedRef.current = on;
    setArmedState(on);
    if (timer.current) clearTimeout(timer.current);
    timer.current = on ? setTimeout(() => setArmed(false), ESC_CONFIRM_MS) : null;
  }, []);
  useEffect(() => setArmed(false), [phase, setArmed]);
  useEffect(() => {
    if (!enabled) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== 'Escape' || e.repeat) return;
      if (phase === 'matched') {
        if (armedRef.current) {
          setArmed(false);
          next();
        } else {
          setArmed(true);
        }
      } else if (phase === 'ended' || phase === 'idle') {
        next();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [phase, enabled, next, setArmed]);
  useEffect(() => () => void (timer.current && clearTimeout(timer.current)), []);
  return armed;
}

export interface ChatScreenProps {
  readonly session: Session;
  readonly media: LocalMedia;
  readonly autoNext: boolean;
  /** The operator's nudity protection for the stranger's video. */
  readonly nudity: NuditySettings;
  onAutoNext(on: boolean): void;
  onHome(): void;
  /** Leave video mode for text (the camera cannot be used). */
  onUseText(): void;
}

export function ChatScreen({ session, media, autoNext, nudity, onAutoNext, onHome, onUseText }: ChatScreenProps): ReactElement {
  const state = useStore(session.store);
  const remote = useStore(session.remote);
  const local = useStore(media.store);
  const guard = useNudityGuard(nudity, state.mode === 'video' ? remote : null);
  const [reporting, setReporting] = useState(false);
  const [devicesOpen, setDevicesOpen] = useState(false);
  const video = state.mode === 'video';
  const { phase } = state;
  const status = statusText(state);

  const next = useCallback(() => session.next(), [session]);
  const armed = useEscape(phase, !reporting, next);

  // Notices are remarks, not state: they fade after a few seconds.
  useEffect(() => {
    if (!state.notice) return;
    const t = setTimeout(() => session.clearNotice(), 4_000);
    return () => clearTimeout(t);
  }, [state.notice, session]);

  const idle = phase === 'idle' || phase === 'ended';
  // The last stranger can be reported for a while after the chat ended (the server keeps who it was).
  const canReport = phase === 'matched' || state.ended !== null;
  const looking = phase === 'waiting' || phase === 'connecting';
  const overlay =
    phase === 'matched' && state.media === 'connected' && remote ? null : (
      <div className="overlay">
        {looking && <span className="spinner" aria-hidden="true" />}
        <span>{status}</span>
      </div>
    );

  return (
    <div className={`screen ${video ? 'screen-video' : 'screen-text'}`}>
      {video && (
        <section className="stage" aria-label="Video">
          <div className="tile tile-remote">
            <Video
              stream={remote}
              label="Stranger’s video"
              className="video"
              testId="remote-video"
              blurred={guard.blurred}
              elementRef={guard.setVideo}
            />
            <NudityShield view={guard} canReport={canReport} onReport={() => setReporting(true)} />
            {overlay}
            <span className="tag">Stranger</span>
          </div>
          <div className="tile tile-local">
            <Video stream={local.stream} muted mirrored label="Your video" className="video" testId="local-video" />
            {(!local.camOn || !local.stream) && (
              <div className="overlay overlay-soft">
                {local.status === 'requesting' ? 'Starting camera…' : local.problem ? 'No camera' : 'Camera off'}
              </div>
            )}
            <span className="tag">You{local.micOn ? '' : ' · muted'}</span>
          </div>
          {local.problem && (
            <div className="problem stage-alert" role="alert">
              <p>{local.problem.message}</p>
              <div className="row">
                <button type="button" className="btn btn-primary" onClick={onUseText}>
                  Use text chat
                </button>
              </div>
            </div>
          )}
        </section>
      )}

      <div className="bar" role="toolbar" aria-label="Chat controls">
        <button
          type="button"
          className={`btn btn-primary btn-next${armed ? ' btn-armed' : ''}`}
          onClick={next}
          disabled={phase === 'connecting' || phase === 'waiting'}
          title="Next stranger (Esc twice)"
        >
          <Icon name="next" />
          <span>{armed ? 'Really? Esc' : idle ? 'New chat' : 'Next'}</span>
          {!armed && !idle && <kbd>Esc</kbd>}
        </button>
        <button
          type="button"
          className="btn"
          aria-label="Stop"
          onClick={() => session.stop()}
          disabled={phase === 'idle' || phase === 'ended'}
        >
          <Icon name="stop" />
          <span>Stop</span>
        </button>
        {video && (
          <>
            <DeviceToggle
              on={local.micOn}
              labels={['Mute microphone', 'Unmute microphone']}
              icons={['mic', 'mic-off']}
              onToggle={() => media.setMic(!local.micOn)}
            />
            <DeviceToggle
              on={local.camOn}
              labels={['Turn camera off', 'Turn camera on']}
              icons={['cam', 'cam-off']}
              onToggle={() => media.setCamera(!local.camOn)}
            />
            <div className="anchor">
              <button
                type="button"
                className="btn btn-icon"
                aria-label="Choose camera and microphone"
                title="Choose camera and microphone"
                aria-expanded={devicesOpen}
                onClick={() => {
                  if (!devicesOpen) void media.refreshDevices();
                  setDevicesOpen(!devicesOpen);
                }}
              >
                <Icon name="settings" />
              </button>
              {devicesOpen && (
                <DeviceMenu
                  media={local}
                  onCamera={(id) => void media.chooseCamera(id)}
                  onMicrophone={(id) => void media.chooseMicrophone(id)}
                  onClose={() => setDevicesOpen(false)}
                />
              )}
            </div>
          </>
        )}
        <button
          type="button"
          className="btn btn-danger-ghost"
          aria-label="Report"
          onClick={() => setReporting(true)}
          disabled={!canReport}
        >
          <Icon name="flag" />
          <span>Report</span>
        </button>
        <button type="button" className="btn btn-link" onClick={onHome}>
          Change settings
        </button>
      </div>

      <ChatPanel
        lines={state.lines}
        strangerTyping={state.strangerTyping}
        commonInterests={phase === 'matched' ? (state.match?.commonInterests ?? []) : []}
        status={status}
        notice={state.notice}
        canSend={phase === 'matched'}
        idlePlaceholder={looking ? 'Waiting for a stranger…' : 'Start a new chat to talk again'}
        actions={
          <label className="switch" title="When the stranger leaves, look for the next one">
            <input type="checkbox" checked={autoNext} onChange={(e) => onAutoNext(e.target.checked)} />
            <span className="switch-track" aria-hidden="true" />
            <span>Auto-next</span>
          </label>
        }
        onSend={(text) => session.sendChat(text)}
        onTyping={(active) => session.setTyping(active)}
      />

      {reporting && (
        <ReportDialog
          onCancel={() => setReporting(false)}
          onSubmit={(reason) => {
            setReporting(false);
            session.report(reason);
          }}
        />
      )}
    </div>
  );
}
