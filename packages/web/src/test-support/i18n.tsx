// The interface's texts in tests: English, with a missing key thrown as an
// error instead of shown as the key itself.
import type { ReactElement, ReactNode } from 'react';
import { I18nextProvider } from 'react-i18next';
import { createI18n } from '../i18n/index.js';

export const testI18n = createI18n({ lng: 'en', strict: true });
export const t = testI18n.t;

export function WithI18n({ children }: { readonly children: ReactNode }): ReactElement {
  return <I18nextProvider i18n={testI18n}>{children}</I18nextProvider>;
}
