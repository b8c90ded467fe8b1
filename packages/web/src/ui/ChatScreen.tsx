import { flagEmoji } from '../client/flag.js';
import { useCallback, useEffect, useRef, useState } from 'react';
import type { ReactElement, ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import type { NuditySettings } from '../client/config.js';
import type { LocalMedia } from '../client/LocalMedia.js';
import type { Session } from '../client/Session.js';
import { noticeText, statusText } from '../client/state.js';
import type { Phase } from '../client/state.js';
import { ChatPanel } from './ChatPanel.js';
import { DeviceMenu } from './DeviceMenu.js';
import { touchFirst, useStore } from './hooks.js';
import { Icon, type IconName } from './icons.js';
import { MediaProblemText } from './MediaProblemText.js';
import { NudityShield, useNudityGuard } from './NudityShield.js';
import { ReportDialog } from './ReportDialog.js';
import { BlockButton } from './BlockButton.js';
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
  /** People online and waiting, shown while looking for someone. */
  readonly online?: ReactNode;
  /** Leave video mode for text (the camera cannot be used). */
  onUseText(): void;
}

export function ChatScreen({ session, media, autoNext, nudity, onAutoNext, onHome, onUseText, online }: ChatScreenProps): ReactElement {
  const state = useStore(session.store);
  const remote = useStore(session.remote);
  const local = useStore(media.store);
  const { t } = useTranslation();
  const guard = useNudityGuard(nudity, state.mode === 'video' ? remote : null);
  const [reporting, setReporting] = useState(false);
  const [devicesOpen, setDevicesOpen] = useState(false);
  const video = state.mode === 'video';
  const { phase } = state;
  const status = statusText(state, t);

  const next = useCallback(() => session.next(), [session]);
  const armed = useEscape(phase, !reporting && !devicesOpen, next);

  const heading = useRef<HTMLHeadingElement>(null);
  const nextButton = useRef<HTMLButtonElement>(null);
  const input = useRef<HTMLTextAreaElement>(null);
  const devicesButton = useRef<HTMLButtonElement>(null);
  const closeDevices = useCallback(() => {
    setDevicesOpen(false);
    devicesButton.current?.focus();
  }, []);
  // A new screen: focus goes to its heading, so a screen reader starts there
  // and Tab goes on from the top of the chat instead of the page's start.
  useEffect(() => heading.current?.focus(), []);
  // A stranger is found: to the message box, where the conversation starts;
  // on a touch screen to Next instead, as a focused text box would open the
  // keyboard over the stranger's video.
  const room = phase === 'matched' ? state.match?.roomCode : undefined;
  useEffect(() => {
    if (!room) return;
    if (touchFirst()) nextButton.current?.focus();
    else input.current?.focus();
  }, [room]);

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
    <main className={`screen ${video ? 'screen-video' : 'screen-text'}`} aria-labelledby="chat-title">
      <h1 id="chat-title" className="sr-only" tabIndex={-1} ref={heading}>
        {video ? t('chat.titleVideo') : t('chat.titleText')}
      </h1>
      {video && (
        <section className="stage" aria-label={t('chat.videoStage')}>
          <div className="tile tile-remote">
            <Video
              stream={remote}
              label={t('chat.strangerVideo')}
              className="video"
              testId="remote-video"
              blurred={guard.blurred}
              elementRef={guard.setVideo}
            />
            <NudityShield view={guard} canReport={canReport} onReport={() => setReporting(true)} />
            {overlay}
            <span className="tag">
              {t('chat.stranger')}
              {phase === 'matched' && state.match?.country ? <span aria-hidden="true"> {flagEmoji(state.match.country)}</span> : null}
            </span>
          </div>
          <div className="tile tile-local">
            <Video
              stream={local.stream}
              muted
              mirrored={local.facing === 'user'}
              label={t('chat.yourVideo')}
              className="video"
              testId="local-video"
            />
            {(!local.camOn || !local.stream) && (
              <div className="overlay overlay-soft">
                {local.status === 'requesting'
                  ? t('chat.startingCamera')
                  : local.problem
                    ? t('chat.noCamera')
                    : t('chat.cameraOff')}
              </div>
            )}
            <span className="tag">{local.micOn ? t('chat.you') : t('chat.youMuted')}</span>
          </div>
          {local.problem && (
            <div className="problem stage-alert" role="alert">
              <p>
                <MediaProblemText problem={local.problem} />
              </p>
              <div className="row">
                <button type="button" className="btn btn-primary" onClick={onUseText}>
                  {t('landing.useText')}
                </button>
              </div>
            </div>
          )}
        </section>
      )}

      <div className="bar" role="toolbar" aria-label={t('chat.controls')}>
        <button
          ref={nextButton}
          type="button"
          className={`btn btn-primary btn-next${armed ? ' btn-armed' : ''}`}
          onClick={next}
          disabled={phase === 'connecting' || phase === 'waiting'}
          title={t('chat.nextTitle')}
        >
          <Icon name="next" />
          <span>{armed ? t('chat.confirmNext') : idle ? t('chat.newChat') : t('chat.next')}</span>
          {!armed && !idle && <kbd>{t('chat.esc')}</kbd>}
        </button>
        <button
          type="button"
          className="btn"
          aria-label={t('chat.stop')}
          onClick={() => session.stop()}
          disabled={phase === 'idle' || phase === 'ended'}
        >
          <Icon name="stop" />
          <span>{t('chat.stop')}</span>
        </button>
        {video && (
          <>
            <DeviceToggle
              on={local.micOn}
              labels={[t('chat.muteMic'), t('chat.unmuteMic')]}
              icons={['mic', 'mic-off']}
              onToggle={() => media.setMic(!local.micOn)}
            />
            <DeviceToggle
              on={local.camOn}
              labels={[t('chat.cameraOffAction'), t('chat.cameraOnAction')]}
              icons={['cam', 'cam-off']}
              onToggle={() => media.setCamera(!local.camOn)}
            />
            {local.cameras.length > 1 && (
              <button
                type="button"
                className="btn btn-icon btn-flip"
                aria-label={t('chat.switchCamera')}
                title={t('chat.switchCamera')}
                disabled={!local.stream}
                onClick={() => void media.flipCamera()}
              >
                <Icon name="flip" />
              </button>
            )}
            <div className="anchor">
              <button
                ref={devicesButton}
                type="button"
                className="btn btn-icon"
                aria-label={t('chat.chooseDevices')}
                title={t('chat.chooseDevices')}
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
                  onClose={closeDevices}
                />
              )}
            </div>
          </>
        )}
        <button
          type="button"
          className="btn btn-danger-ghost"
          aria-label={t('chat.report')}
          onClick={() => setReporting(true)}
          disabled={!canReport}
        >
          <Icon name="flag" />
          <span>{t('chat.report')}</span>
        </button>
        <BlockButton disabled={!canReport} onBlock={() => session.block()} />
        <button type="button" className="btn btn-link" onClick={onHome}>
          {t('chat.changeSettings')}
        </button>
      </div>

      <ChatPanel
        lines={state.lines}
        strangerTyping={state.strangerTyping}
        commonInterests={phase === 'matched' ? (state.match?.commonInterests ?? []) : []}
        {...(phase === 'matched' && state.match?.country ? { country: state.match.country } : {})}
        status={status}
        notice={state.notice ? noticeText(state.notice, t) : null}
        canSend={phase === 'matched'}
        idlePlaceholder={looking ? t('chat.waitingPlaceholder') : t('chat.endedPlaceholder')}
        actions={
          <>
            {looking && online}
            <label className="switch" title={t('chat.autoNextTitle')}>
              <input type="checkbox" checked={autoNext} onChange={(e) => onAutoNext(e.target.checked)} />
              <span className="switch-track" aria-hidden="true" />
              <span>{t('chat.autoNext')}</span>
            </label>
          </>
        }
        inputRef={input}
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
    </main>
  );
}
