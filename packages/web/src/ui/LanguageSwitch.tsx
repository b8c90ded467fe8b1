import type { ReactElement } from 'react';
import { useTranslation } from 'react-i18next';
import { UI_LANGUAGES, chooseLanguage, currentLanguage } from '../i18n/index.js';
import type { UiLanguage } from '../i18n/index.js';

/** The interface language, switchable at any time; each language named in itself. */
export function LanguageSwitch(): ReactElement {
  const { t, i18n } = useTranslation();
  return (
    <label className="ui-lang">
      <span className="sr-only">{t('app.uiLanguage')}</span>
      <select value={currentLanguage(i18n)} onChange={(e) => chooseLanguage(i18n, e.target.value as UiLanguage)}>
        {UI_LANGUAGES.map((l) => (
          <option key={l.code} value={l.code} lang={l.code}>
            {l.name}
          </option>
        ))}
      </select>
    </label>
  );
}
