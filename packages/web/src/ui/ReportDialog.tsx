import { useEffect, useRef, useState } from 'react';
import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';
import { en } from '../i18n/locales/en.js';
import { useEscapeToClose, useFocusTrap } from './hooks.js';

export const REPORT_REASONS = ['nudity', 'harassment', 'minor', 'spam', 'violence', 'other'] as const;
export type ReportReason = (typeof REPORT_REASONS)[number];

/** The reason as moderators read it: in English, whatever the reporter's language. */
export const reasonForModerators = (reason: ReportReason): string => en.report[reason];

export interface ReportDialogProps {
  onSubmit(reason: string): void;
  onCancel(): void;
}

export function ReportDialog({ onSubmit, onCancel }: ReportDialogProps): ReactElement {
  const { t } = useTranslation();
  const [reason, setReason] = useState<ReportReason>(REPORT_REASONS[0]);
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
            onSubmit(reasonForModerators(reason));
          }}
        >
        <h2 id="report-title">{t('report.title')}</h2>
        <p className="muted">{t('report.explain')}</p>
        <fieldset className="reasons">
          <legend className="sr-only">{t('report.reason')}</legend>
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
              <span>{t(`report.${r}`)}</span>
            </label>
          ))}
        </fieldset>
        <div className="row row-end">
          <button type="button" className="btn" onClick={onCancel}>
            {t('report.cancel')}
          </button>
          <button type="submit" className="btn btn-danger">
            {t('report.submit')}
          </button>
        </div>
        </form>
      </div>
    </div>
  );
}
