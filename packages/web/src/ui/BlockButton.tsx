import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';

export interface BlockButtonProps {
  disabled: boolean;
  onBlock(): void;
}

/** End the chat and never meet this stranger again, without reporting them. */
export function BlockButton({ disabled, onBlock }: BlockButtonProps): ReactElement {
  const { t } = useTranslation();
  return (
    <button
      type="button"
      className="btn btn-danger-ghost"
      aria-label={t('chat.block')}
      title={t('chat.blockTitle')}
      onClick={onBlock}
      disabled={disabled}
    >
      <span>{t('chat.block')}</span>
    </button>
  );
}
