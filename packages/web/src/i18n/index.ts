// The interface in the visitor's language: i18next with the catalogs of
// ./locales, chosen from the browser (or the visitor's own choice, kept in
// localStorage), with the page's lang, dir and title following it.
import i18next from 'i18next';
import type { i18n as I18n, TFunction } from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { initReactI18next } from 'react-i18next';
import { ar } from './locales/ar.js';
import { en } from './locales/en.js';
import { es } from './locales/es.js';
import { fr } from './locales/fr.js';

declare module 'i18next' {
  interface CustomTypeOptions {
    defaultNS: 'translation';
    resources: { translation: typeof en };
  }
}

/** The languages of the interface, each named in itself (a visitor looks for their own). */
export const UI_LANGUAGES = [
  { code: 'en', name: 'English' },
  { code: 'es', name: 'Español' },
  { code: 'fr', name: 'Français' },
  { code: 'ar', name: 'العربية' },
] as const;
export type UiLanguage = (typeof UI_LANGUAGES)[number]['code'];

export const CATALOGS = { en, es, fr, ar } as const;

/** Where an explicit choice of language is kept; unset, the browser's languages decide. */
export const UI_LANG_KEY = 'dyad.uiLang';

export type Translate = TFunction;

export interface I18nOptions {
  /** A fixed language (tests); unset, detected from localStorage and the browser. */
  readonly lng?: string;
  /** A key missing from the catalog throws instead of showing the key (tests). */
  readonly strict?: boolean;
}

export function createI18n(options: I18nOptions = {}): I18n {
  const instance = i18next.createInstance();
  if (!options.lng) instance.use(LanguageDetector);
  instance.use(initReactI18next);
  void instance.init({
    resources: Object.fromEntries(Object.entries(CATALOGS).map(([code, translation]) => [code, { translation }])),
    ...(options.lng ? { lng: options.lng } : {}),
    fallbackLng: 'en',
    supportedLngs: UI_LANGUAGES.map((l) => l.code),
    nonExplicitSupportedLngs: true,
    load: 'languageOnly',
    initAsync: false,
    // React escapes what it renders.
    interpolation: { escapeValue: false },
    detection: {
      order: ['localStorage', 'navigator'],
      lookupLocalStorage: UI_LANG_KEY,
      // Only an explicit choice is kept (chooseLanguage); a detected one follows the browser.
      caches: [],
    },
    returnNull: false,
    ...(options.strict
      ? {
          saveMissing: true,
          missingKeyHandler: (_lngs: readonly string[], _ns: string, key: string) => {
            throw new Error(`untranslated key: ${key}`);
          },
        }
      : {}),
  });
  return instance;
}

/** The visitor picked a language: use it and keep it for the next visit. */
export function chooseLanguage(instance: I18n, code: UiLanguage): void {
  void instance.changeLanguage(code);
  try {
    globalThis.localStorage?.setItem(UI_LANG_KEY, code);
  } catch {
    // storage blocked: the choice holds for this visit
  }
}

/** The language of the interface now, as one of UI_LANGUAGES. */
export function currentLanguage(instance: I18n): UiLanguage {
  const lng = instance.resolvedLanguage ?? 'en';
  return UI_LANGUAGES.some((l) => l.code === lng) ? (lng as UiLanguage) : 'en';
}

/** The page follows the interface language: lang, direction (mirrored layout for Arabic) and title. */
export function followLanguage(instance: I18n, doc: Document = document): () => void {
  const apply = () => {
    const lng = currentLanguage(instance);
    doc.documentElement.lang = lng;
    doc.documentElement.dir = instance.dir(lng);
    doc.title = instance.t('app.title');
  };
  apply();
  instance.on('languageChanged', apply);
  return () => instance.off('languageChanged', apply);
}
