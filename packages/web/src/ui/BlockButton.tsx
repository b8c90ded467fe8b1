import type { ReactElement } from 'react';

export interface BlockButtonProps {
  disabled: boolean;
  onBlock(): void;
}

/** End the chat and never meet this stranger again, without reporting them. */
export function BlockButton({ disabled, onBlock }: BlockButtonProps): ReactElement {
  return (
    <button
      type="button"
      className="btn btn-danger-ghost"
      aria-label="Block"
      title="End the chat and never meet this stranger again"
      onClick={onBlock}
      disabled={disabled}
    >
      <span>Block</span>
    </button>
  );
}
