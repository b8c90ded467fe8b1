import { useEffect, useRef, useState } from 'react';
import type { ChangeEvent, FormEvent, KeyboardEvent, ReactElement, ReactNode, Ref } from 'react';
import { MAX_CHAT_CHARS } from '@dyad/protocol';
import { useTranslation } from 'react-i18next';
import { countryName, flagEmoji } from '../client/flag.js';
import { lineText } from '../client/state.js';
import type { ChatLine } from '../client/state.js';
import { Icon } from './icons.js';

export interface ChatPanelProps {
  readonly lines: readonly ChatLine[];
  readonly strangerTyping: boolean;
  readonly commonInterests: readonly string[];
  /** The stranger's country, only when the stranger chose to show it. */
  readonly country?: string;
  readonly status: string;
  readonly notice?: string | null;
  /** False when there is nobody to talk to: the input stays usable for drafting but cannot send. */
  readonly canSend: boolean;
  /** Shown in the empty input when it cannot send. */
  readonly idlePlaceholder?: string;
  /** Controls shown beside the status line. */
  readonly actions?: ReactNode;
  /** The message box, for the screen to move focus to when a stranger is found. */
  readonly inputRef?: Ref<HTMLTextAreaElement>;
  /** Returns whether the message went out; the draft is kept when it did not. */
  onSend(text: string): boolean;
  onTyping(active: boolean): void;
}

export function ChatPanel(props: ChatPanelProps): ReactElement {
  const { lines, strangerTyping, commonInterests, country, status, notice, canSend, onSend, onTyping, actions } = props;
  const { t, i18n } = useTranslation();
  const [draft, setDraft] = useState('');
  const logRef = useRef<HTMLOListElement>(null);
  const stickToBottom = useRef(true);

  // Follow the conversation unless the reader scrolled up to look at older lines.
  // In the next frame, where layout happens anyway: reading scrollHeight right
  // away would force a layout inside the socket handler that changed the lines.
  useEffect(() => {
    if (lines.length === 0) return;
    const frame = requestAnimationFrame(() => {
      const log = logRef.current;
      if (log && stickToBottom.current) log.scrollTop = log.scrollHeight;
    });
    return () => cancelAnimationFrame(frame);
  }, [lines, strangerTyping]);

  const onScroll = () => {
    const log = logRef.current;
    if (log) stickToBottom.current = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  };

  // A new conversation starts with an empty box.
  const firstLine = lines[0]?.id;
  useEffect(() => {
    stickToBottom.current = true;
  }, [firstLine]);

  const send = () => {
    if (!canSend || draft.trim() === '') return;
    if (onSend(draft)) setDraft('');
  };

  const onChange = (e: ChangeEvent<HTMLTextAreaElement>) => {
    setDraft(e.target.value);
    onTyping(e.target.value.trim() !== '');
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends; Shift+Enter breaks the line; an IME composition keeps its Enter.
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      send();
    }
  };

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    send();
  };

  return (
    <section className="chat" aria-label={t('chat.panel')}>
      <header className="chat-head">
        <p className="status" role="status" aria-live="polite" data-testid="status">
          {status}
        </p>
        {country && (
          <p className="peer-country" data-testid="peer-country">
            <span className="flag" aria-hidden="true">
              {flagEmoji(country)}
            </span>
            {t('chat.strangerFrom', { country: countryName(country, i18n.language) })}
          </p>
        )}
        {commonInterests.length > 0 && (
          <ul className="chips chips-small" aria-label={t('chat.sharedInterests')}>
            {commonInterests.map((i) => (
              <li key={i} className="chip">
                {i}
              </li>
            ))}
          </ul>
        )}
        {actions}
      </header>
      <ol className="log" ref={logRef} onScroll={onScroll} aria-live="polite" aria-label={t('chat.messages')}>
        {lines.map((line) => (
          <li key={line.id} className={`line line-${line.from}`} data-from={line.from}>
            {line.from !== 'system' && (
              <strong className="who">{line.from === 'you' ? t('chat.you') : t('chat.stranger')}:</strong>
            )}{' '}
            <bdi>{lineText(line, t)}</bdi>
          </li>
        ))}
      </ol>
      <p className="typing" aria-live="polite" data-testid="typing">
        {strangerTyping ? t('chat.typing') : ''}
      </p>
      {notice && (
        <p className="notice" role="alert">
          {notice}
        </p>
      )}
      <form className="compose" onSubmit={onSubmit}>
        <label className="sr-only" htmlFor="chat-input">
          {t('chat.message')}
        </label>
        <textarea
          ref={props.inputRef}
          id="chat-input"
          rows={1}
          value={draft}
          maxLength={MAX_CHAT_CHARS}
          placeholder={canSend ? t('chat.messagePlaceholder') : (props.idlePlaceholder ?? t('chat.waitingPlaceholder'))}
          onChange={onChange}
          onKeyDown={onKeyDown}
          autoComplete="off"
          enterKeyHint="send"
        />
        <button type="submit" className="btn btn-send" disabled={!canSend || draft.trim() === ''} aria-label={t('chat.send')}>
          <Icon name="send" />
        </button>
      </form>
    </section>
  );
}
