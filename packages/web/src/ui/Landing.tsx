import { useEffect, useRef, useState } from 'react';
import type { KeyboardEvent, ReactElement } from 'react';
import { MAX_INTEREST_CHARS, MAX_INTERESTS } from '@dyad/protocol';
import type { Mode } from '@dyad/protocol';
import type { LocalMediaState } from '../client/LocalMedia.js';
import { cleanInterests } from '../client/Session.js';
import { Video } from './Video.js';

export const LANGUAGES: ReadonlyArray<readonly [tag: string, name: string]> = [
  ['', 'Any language'],
  ['en', 'English'],
  ['es', 'Español'],
  ['fr', 'Français'],
  ['de', 'Deutsch'],
  ['it', 'Italiano'],
  ['pt', 'Português'],
  ['nl', 'Nederlands'],
  ['pl', 'Polski'],
  ['tr', 'Türkçe'],
  ['ru', 'Русский'],
  ['uk', 'Українська'],
  ['ar', 'العربية'],
  ['hi', 'हिन्दी'],
  ['id', 'Bahasa Indonesia'],
  ['ja', '日本語'],
  ['ko', '한국어'],
  ['zh', '中文'],
];

export interface LandingProps {
  readonly mode: Mode;
  readonly interests: readonly string[];
  readonly lang: string;
  readonly adult: boolean;
  /** False until the service addresses are known. */
  readonly ready: boolean;
  /** Start was pressed; the chat screen follows in a moment. */
  readonly starting?: boolean;
  readonly media: LocalMediaState;
  readonly failure: string | null;
  /** The visitor came back from a chat: focus goes to the page's heading. */
  readonly focusHeading?: boolean;
  onMode(mode: Mode): void;
  onInterests(list: string[]): void;
  onLang(lang: string): void;
  onAdult(adult: boolean): void;
  onRetryMedia(): void;
  onStart(): void;
}

export function Landing(props: LandingProps): ReactElement {
  const { mode, interests, lang, adult, ready, media, failure } = props;
  const [tag, setTag] = useState('');
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (props.focusHeading) heading.current?.focus();
    // Only when the screen appears.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const mediaBlocked = mode === 'video' && media.status === 'error';
  const canStart = adult && ready && !mediaBlocked;

  const addTag = (raw: string) => {
    const next = cleanInterests([...interests, ...raw.split(',')]);
    props.onInterests(next);
    setTag('');
  };

  const onTagKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if ((e.key === 'Enter' || e.key === ',') && !e.nativeEvent.isComposing) {
      e.preventDefault();
      if (tag.trim()) addTag(tag);
      else if (e.key === 'Enter' && canStart) props.onStart();
    } else if (e.key === 'Backspace' && tag === '' && interests.length > 0) {
      props.onInterests(interests.slice(0, -1));
    }
  };

  return (
    <main className="landing">
      <section className="hero">
        <h1 tabIndex={-1} ref={heading}>
          Talk to someone <span className="accent">new</span>.
        </h1>
        <p className="lede">
          Dyad pairs you with a random stranger for a one-on-one chat, by video or by text. No account, no history.
        </p>
        <ul className="facts">
          <li>
            <strong>One click.</strong> Press Start and you are talking, usually in under a second.
          </li>
          <li>
            <strong>Shared interests first.</strong> Add a few and we look for someone who likes them too.
          </li>
          <li>
            <strong>Skip any time.</strong> Press Next, or Esc twice, to meet someone else.
          </li>
        </ul>
      </section>

      <form
        className="card setup"
        onSubmit={(e) => {
          e.preventDefault();
          if (canStart && !props.starting) props.onStart();
        }}
      >
        <fieldset className="field">
          <legend>How do you want to chat?</legend>
          <div className="segmented" role="radiogroup">
            {(['video', 'text'] as const).map((m) => (
              <label key={m} className={mode === m ? 'seg seg-on' : 'seg'}>
                <input
                  type="radio"
                  name="mode"
                  value={m}
                  checked={mode === m}
                  onChange={() => props.onMode(m)}
                />
                {m === 'video' ? 'Video' : 'Text'}
              </label>
            ))}
          </div>
        </fieldset>

        <div className="field">
          <label htmlFor="interest-input">
            Interests <span className="muted">(optional)</span>
          </label>
          <div className="tag-input" onClick={(e) => e.currentTarget.querySelector('input')?.focus()}>
            {interests.map((i) => (
              <span key={i} className="chip">
                {i}
                <button
                  type="button"
                  className="chip-x"
                  aria-label={`Remove ${i}`}
                  onClick={() => props.onInterests(interests.filter((x) => x !== i))}
                >
                  ×
                </button>
              </span>
            ))}
            {interests.length < MAX_INTERESTS && (
              <input
                id="interest-input"
                value={tag}
                maxLength={MAX_INTEREST_CHARS}
                placeholder={interests.length === 0 ? 'music, movies, chess…' : 'Add another'}
                onChange={(e) => setTag(e.target.value)}
                onKeyDown={onTagKey}
                onBlur={() => tag.trim() && addTag(tag)}
                autoComplete="off"
                enterKeyHint="done"
              />
            )}
          </div>
          <p className="hint">Someone who shares one comes first; after a few seconds, anyone.</p>
        </div>

        <div className="field">
          <label htmlFor="lang-select">Language</label>
          <select id="lang-select" value={lang} onChange={(e) => props.onLang(e.target.value)}>
            {LANGUAGES.map(([code, name]) => (
              <option key={code} value={code}>
                {name}
              </option>
            ))}
          </select>
        </div>

        <label className="check">
          <input type="checkbox" checked={adult} onChange={(e) => props.onAdult(e.target.checked)} />
          <span>
            I am 18 or older and agree to the <a href="#terms">terms of use</a>.
          </span>
        </label>

        {mode === 'video' && adult && !media.problem && (
          <div className="preview">
            {media.stream ? (
              <Video stream={media.stream} muted mirrored className="preview-video" label="Your camera" />
            ) : (
              <div className="preview-empty">{media.status === 'requesting' ? 'Starting your camera…' : 'Camera off'}</div>
            )}
          </div>
        )}

        {mode === 'video' && media.problem && (
          <div className="problem" role="alert">
            <p>{media.problem.message}</p>
            <div className="row">
              <button type="button" className="btn btn-primary" onClick={() => props.onMode('text')}>
                Use text chat
              </button>
              <button type="button" className="btn" onClick={props.onRetryMedia}>
                Try again
              </button>
            </div>
          </div>
        )}

        {failure && (
          <p className="problem" role="alert">
            {failure}
          </p>
        )}

        <button type="submit" className="btn btn-primary btn-start" disabled={!canStart} aria-busy={props.starting}>
          {props.starting ? <span className="spinner spinner-small" aria-hidden="true" /> : null}
          Start
        </button>
      </form>

      <section id="terms" className="terms">
        <h2>Terms of use</h2>
        <ul>
          <li>You must be 18 or older.</li>
          <li>Be decent: no nudity, harassment, hate, threats, spam or anything illegal.</li>
          <li>Strangers are strangers. Do not share personal details; they could record what you show them.</li>
          <li>Use Report for anyone who breaks these rules. Reported people can be removed.</li>
        </ul>
      </section>
    </main>
  );
}
