import { startTransition, useEffect, useMemo, useRef, useState } from 'react';
import type { ReactElement } from 'react';
import { REGION_CHOICES, type Mode, type Region } from '@dyad/protocol';
import { useTranslation } from 'react-i18next';
import { DEFAULT_NUDITY, loadConfig } from '../client/config.js';
import type { ClientConfig, NuditySettings } from '../client/config.js';
import { LocalMedia } from '../client/LocalMedia.js';
import { Session, cleanInterests } from '../client/Session.js';
import { failureText, initialState } from '../client/state.js';
import { Store } from '../client/Store.js';
import { ChatScreen } from './ChatScreen.js';
import { useStore, usePersistentState } from './hooks.js';
import { Landing } from './Landing.js';
import { LanguageSwitch } from './LanguageSwitch.js';
import { OnlineCount, useOnlineCounts } from './OnlineCount.js';

const isMode = (v: unknown): v is Mode => v === 'video' || v === 'text';
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isString = (v: unknown): v is string => typeof v === 'string';
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isRegion = (v: unknown): v is Region => (REGION_CHOICES as readonly unknown[]).includes(v);

/** The longest the landing screen stays after Start while the sockets (and a first offer/answer) go through. */
const SCREEN_SWITCH_MAX_MS = 300;

/** Stands in for the session's store until /config.json has been read. */
const EMPTY_STORE = new Store(initialState);

export function App(): ReactElement {
  const { t } = useTranslation();
  const media = useMemo(() => new LocalMedia(), []);
  const [session, setSession] = useState<Session | null>(null);
  const [config, setConfig] = useState<ClientConfig | null>(null);
  const [nudity, setNudity] = useState<NuditySettings>(DEFAULT_NUDITY);
  const [screen, setScreen] = useState<'landing' | 'chat'>('landing');
  /** The landing screen was reached from a chat (not on arrival): it takes focus. */
  const [returned, setReturned] = useState(false);
  const [mode, setMode] = usePersistentState<Mode>('dyad.mode', 'video', isMode);
  const [interests, setInterests] = usePersistentState<string[]>('dyad.interests', [], isStringList);
  const [lang, setLang] = usePersistentState<string>('dyad.lang', '', isString);
  const [region, setRegion] = usePersistentState<Region>('dyad.region', 'anywhere', isRegion);
  const [showCountry, setShowCountry] = usePersistentState<boolean>('dyad.showCountry', false, isBool);
  const [autoNext, setAutoNext] = usePersistentState<boolean>('dyad.autoNext', false, isBool);
  // Asked on every visit: it is a promise about who is in front of the screen now.
  const [adult, setAdult] = useState(false);
  /** Start was pressed and the chat screen is about to show. */
  const [starting, setStarting] = useState(false);
  /** Counts Starts and trips home, so a late screen switch of an abandoned Start is dropped. */
  const startRun = useRef(0);
  const mediaState = useStore(media.store);

  useEffect(() => {
    let live = true;
    let created: Session | null = null;
    void loadConfig().then((config) => {
      if (!live) return;
      created = new Session({ config, media });
      setConfig(config);
      setSession(created);
      setNudity(config.nudity ?? DEFAULT_NUDITY);
    });
    return () => {
      live = false;
      created?.dispose();
    };
  }, [media]);

  useEffect(() => {
    if (session) session.autoNext = autoNext;
  }, [session, autoNext]);

  // The camera starts once the visitor has confirmed, so Start finds it warm,
  // and with it the peer connection, so Start costs only the sockets.
  // Text chosen, or 18+ unticked on the landing screen: the camera and
  // microphone go off (a spare peer connection holding them closes with them)
  // and nothing asks for them again until video is chosen and confirmed.
  useEffect(() => {
    if (mode !== 'video' || (screen === 'landing' && !adult)) media.release();
    else if (screen === 'landing' && adult) void media.acquire();
  }, [screen, adult, mode, media]);
  useEffect(() => {
    if (!session || screen !== 'landing') return;
    if (adult && mode === 'video' && mediaState.status === 'ready') session.warmUp();
    else session.coolDown();
  }, [session, screen, adult, mode, mediaState.status]);

  useEffect(() => {
    if (!session) return;
    // A closed tab is a clean leave (stop, close 1000), not a dropped connection.
    const onPageHide = () => session.leave();
    const onPageShow = (e: PageTransitionEvent) => {
      if (e.persisted) setScreen('landing');
    };
    const onOnline = () => session.networkChanged();
    window.addEventListener('pagehide', onPageHide);
    window.addEventListener('pageshow', onPageShow);
    window.addEventListener('online', onOnline);
    return () => {
      window.removeEventListener('pagehide', onPageHide);
      window.removeEventListener('pageshow', onPageShow);
      window.removeEventListener('online', onOnline);
    };
  }, [session]);

  const state = useStore(session?.store ?? EMPTY_STORE);
  // Counts are asked for only where they are shown: on the landing screen and while looking for someone.
  const looking = state.phase === 'waiting' || state.phase === 'connecting';
  const counts = useOnlineCounts(screen === 'landing' || looking ? (config?.matchingUrl ?? null) : null);
  const online = <OnlineCount counts={counts} mode={mode} />;

  // The region choice and the flag opt-in, where the server pairs by region (REGION_FILTER).
  const regionsOffered = config?.regionFilter !== false;
  const placePrefs = regionsOffered ? { region, showCountry } : {};

  const start = () => {
    if (!session || starting) return;
    session.autoNext = autoNext;
    session.start({ mode, interests: cleanInterests(interests), lang: lang || null, ...placePrefs });
    // The chat screen is the heaviest render of the app. It waits until the
    // sockets are up and, when a stranger is already there, offer and answer
    // have passed (a few milliseconds on a good link, never more than
    // SCREEN_SWITCH_MAX_MS), so a slow phone spends that time on what the
    // first frame waits for; it then renders in interruptible slices.
    setStarting(true);
    const run = ++startRun.current;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, SCREEN_SWITCH_MAX_MS)));
    void Promise.race([session.whenReady(), deadline]).then(() => {
      clearTimeout(timer);
      if (run !== startRun.current) return;
      setStarting(false);
      startTransition(() => setScreen('chat'));
    });
  };

  const goHome = () => {
    startRun.current++;
    setStarting(false);
    session?.leave();
    setReturned(true);
    setScreen('landing');
  };

  return (
    <div className="app">
      <header className="topbar">
        <button
          type="button"
          className="brand"
          onClick={goHome}
          aria-label={t('app.home')}
        >
          <span className="logo" aria-hidden="true">
            <span />
            <span />
          </span>
          {t('app.name')}
        </button>
        {screen === 'chat' && (
          <span className={`pill pill-${state.link}`}>
            {state.link === 'online'
              ? t('app.link.online')
              : state.link === 'reconnecting'
                ? t('app.link.reconnecting')
                : t('app.link.offline')}
          </span>
        )}
        <LanguageSwitch />
      </header>
      {screen === 'landing' || !session ? (
        <Landing
          mode={mode}
          interests={interests}
          lang={lang}
          region={region}
          showCountry={showCountry}
          regions={regionsOffered}
          adult={adult}
          media={mediaState}
          ready={session !== null}
          starting={starting}
          failure={state.failure ? failureText(state.failure, t) : null}
          focusHeading={returned}
          online={online}
          onMode={setMode}
          onInterests={setInterests}
          onLang={setLang}
          onRegion={setRegion}
          onShowCountry={setShowCountry}
          onAdult={setAdult}
          onRetryMedia={() => {
            media.release();
            void media.acquire();
          }}
          onStart={start}
        />
      ) : (
        <ChatScreen
          session={session}
          media={media}
          autoNext={autoNext}
          nudity={nudity}
          onAutoNext={setAutoNext}
          onHome={goHome}
          online={online}
          onUseText={() => {
            setMode('text');
            session.start({ mode: 'text', interests: cleanInterests(interests), lang: lang || null, ...placePrefs });
          }}
        />
      )}
    </div>
  );
}
