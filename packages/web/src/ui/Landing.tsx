import { useEffect, useRef, useState } from 'react';
import type { KeyboardEvent, ReactElement, ReactNode } from 'react';
import { MAX_INTEREST_CHARS, MAX_INTERESTS } from '@dyad/protocol';
import { REGIONS, type Mode, type Region } from '@dyad/protocol';
import { Trans, useTranslation } from 'react-i18next';
import type { LocalMediaState } from '../client/LocalMedia.js';
import { cleanInterests } from '../client/Session.js';
import { MediaProblemText } from './MediaProblemText.js';
import { Video } from './Video.js';

/** Languages to meet people in, each named in itself; '' (any language) is named in the interface's. */
export const LANGUAGES: ReadonlyArray<readonly [tag: string, name: string]> = [
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
  /** Whom to prefer by place: anywhere, near (own country) or a region. */
  readonly region: Region;
  /** Show this person's country's flag to the stranger. */
  readonly showCountry: boolean;
  /** The server pairs by region: offer the choice and the opt-in (absent: yes). */
  readonly regions?: boolean;
  readonly adult: boolean;
  /** False until the service addresses are known. */
  readonly ready: boolean;
  /** Start was pressed; the chat screen follows in a moment. */
  readonly starting?: boolean;
  readonly media: LocalMediaState;
  readonly failure: string | null;
  /** Aggregates of the whole deployment (people online and waiting), when known. */
  readonly online?: ReactNode;
  /** The visitor came back from a chat: focus goes to the page's heading. */
  readonly focusHeading?: boolean;
  onMode(mode: Mode): void;
  onInterests(list: string[]): void;
  onLang(lang: string): void;
  onRegion(region: Region): void;
  onShowCountry(show: boolean): void;
  onAdult(adult: boolean): void;
  onRetryMedia(): void;
  onStart(): void;
}

export function Landing(props: LandingProps): ReactElement {
  const { mode, interests, lang, region, showCountry, adult, ready, media, failure } = props;
  const { t } = useTranslation();
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
          <Trans i18nKey="landing.title" components={{ accent: <span className="accent" /> }} />
        </h1>
        <p className="lede">{t('landing.lede')}</p>
        {props.online}
        <ul className="facts">
          <li>
            <Trans i18nKey="landing.factClick" components={{ b: <strong /> }} />
          </li>
          <li>
            <Trans i18nKey="landing.factInterests" components={{ b: <strong /> }} />
          </li>
          <li>
            <Trans i18nKey="landing.factSkip" components={{ b: <strong /> }} />
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
          <legend>{t('landing.howToChat')}</legend>
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
                {m === 'video' ? t('landing.video') : t('landing.text')}
              </label>
            ))}
          </div>
        </fieldset>

        <div className="field">
          <label htmlFor="interest-input">
            <Trans i18nKey="landing.interests" components={{ muted: <span className="muted" /> }} />
          </label>
          <div className="tag-input" onClick={(e) => e.currentTarget.querySelector('input')?.focus()}>
            {interests.map((i) => (
              <span key={i} className="chip">
                {i}
                <button
                  type="button"
                  className="chip-x"
                  aria-label={t('landing.removeInterest', { interest: i })}
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
                placeholder={interests.length === 0 ? t('landing.interestsPlaceholder') : t('landing.addAnother')}
                onChange={(e) => setTag(e.target.value)}
                onKeyDown={onTagKey}
                onBlur={() => tag.trim() && addTag(tag)}
                autoComplete="off"
                enterKeyHint="done"
              />
            )}
          </div>
          <p className="hint">{t('landing.interestsHint')}</p>
        </div>

        <div className="field">
          <label htmlFor="lang-select">{t('landing.language')}</label>
          <select id="lang-select" value={lang} onChange={(e) => props.onLang(e.target.value)}>
            <option value="">{t('landing.anyLanguage')}</option>
            {LANGUAGES.map(([code, name]) => (
              <option key={code} value={code} lang={code}>
                {name}
              </option>
            ))}
          </select>
        </div>

        {props.regions !== false && (
          <div className="field">
            <label htmlFor="region-select">{t('landing.region')}</label>
            <select id="region-select" value={region} onChange={(e) => props.onRegion(e.target.value as Region)}>
              <option value="anywhere">{t('landing.regionAnywhere')}</option>
              <option value="near">{t('landing.regionNear')}</option>
              {REGIONS.map((r) => (
                <option key={r} value={r}>
                  {t(`regions.${r}`)}
                </option>
              ))}
            </select>
            <label className="check check-small">
              <input type="checkbox" checked={showCountry} onChange={(e) => props.onShowCountry(e.target.checked)} />
              <span>{t('landing.showCountry')}</span>
            </label>
          </div>
        )}

        <label className="check">
          <input type="checkbox" checked={adult} onChange={(e) => props.onAdult(e.target.checked)} />
          <span>
            <Trans i18nKey="landing.adult" components={{ terms: <a href="#terms" /> }} />
          </span>
        </label>

        {mode === 'video' && adult && !media.problem && (
          <div className="preview">
            {media.stream ? (
              <Video stream={media.stream} muted mirrored={media.facing === 'user'} className="preview-video" label={t('landing.yourCamera')} />
            ) : (
              <div className="preview-empty">{media.status === 'requesting' ? t('landing.startingCamera') : t('landing.cameraOff')}</div>
            )}
          </div>
        )}

        {mode === 'video' && media.problem && (
          <div className="problem" role="alert">
            <p>
              <MediaProblemText problem={media.problem} />
            </p>
            <div className="row">
              <button type="button" className="btn btn-primary" onClick={() => props.onMode('text')}>
                {t('landing.useText')}
              </button>
              <button type="button" className="btn" onClick={props.onRetryMedia}>
                {t('landing.tryAgain')}
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
          {t('landing.start')}
        </button>
      </form>

      <section id="terms" className="terms">
        <h2>{t('landing.termsTitle')}</h2>
        <ul>
          <li>{t('landing.terms18')}</li>
          <li>{t('landing.termsDecent')}</li>
          <li>{t('landing.termsStrangers')}</li>
          <li>{t('landing.termsReport')}</li>
        </ul>
      </section>
    </main>
  );
}
