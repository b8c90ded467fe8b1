import { useEffect, useRef, useState } from 'react';
import type { ReactElement } from 'react';
import { useEscapeToClose, useFocusTrap } from './hooks.js';

export const REPORT_REASONS = [
  'Nudity or sexual content',
  'Harassment or hate',
  'Looks under 18',
  'Spam or scam',
  'Violence or threats',
  'Something else',
] as const;

export interface ReportDialogProps {
  onSubmit(reason: string): void;
  onCancel(): void;
}

export function ReportDialog({ onSubmit, onCancel }: ReportDialogProps): ReactElement {
  const [reason, setReason] = useState<string>(REPORT_REASONS[0]);
  const first = useRef<HTMLInputElement>(null);
  const dialog = useRef<HTMLDivElement>(null);
  // Focus stays in the dialog while it is open and goes back to Report after.
  useFocusTrap(dialog);
  // Esc closes the dialog here and must not also skip the stranger.
  useEscapeToClose(onCancel);
  useEffect(() => first.current?.focus(), []);
  return (
    <div className="backdrop" onClick={onCancel}>
      <div
        ref={dialog}
        className="card dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="report-title"
        onClick={(e) => e.stopPropagation()}
      >
        <form
          onSubmit={(e) => {
            e.preventDefault();
            onSubmit(reason);
          }}
        >
        <h2 id="report-title">Report this stranger</h2>
        <p className="muted">They will be reported and you will move on to someone new.</p>
        <fieldset className="reasons">
          <legend className="sr-only">Reason</legend>
          {REPORT_REASONS.map((r, i) => (
            <label key={r} className="check">
              <input
                ref={i === 0 ? first : undefined}
                type="radio"
                name="reason"
                value={r}
                checked={reason === r}
                onChange={() => setReason(r)}
              />
              <span>{r}</span>
            </label>
          ))}
        </fieldset>
        <div className="row row-end">
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
          <button type="submit" className="btn btn-danger">
            Report
          </button>
        </div>
        </form>
      </div>
    </div>
  );
}
