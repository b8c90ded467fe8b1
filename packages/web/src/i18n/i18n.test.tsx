// Every text of the interface goes through the catalogs: each language has
// every English key (and no other), with the same placeholders and tags, and
// no component writes a visible text or an accessible name of its own.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen } from '@testing-library/react';
import { I18nextProvider } from 'react-i18next';
import { CATALOGS, UI_LANGUAGES, createI18n, followLanguage } from './index.js';
import { LanguageSwitch } from '../ui/LanguageSwitch.js';

afterEach(cleanup);

/** key path → text, for every leaf of a catalog. */
function flatten(tree: object, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'string') out.set(key, v);
    else for (const [kk, vv] of flatten(v as object, key)) out.set(kk, vv);
  }
  return out;
}

/** What a translation must keep as it is: {{placeholders}} (with their format) and <tags>. */
const markers = (text: string): string[] => [...text.matchAll(/\{\{[^}]+\}\}|<\/?[a-z]+>/g)].map((m) => m[0]).sort();

describe('catalogs', () => {
  const english = flatten(CATALOGS.en);

  it('has English plus at least three languages, one written right to left', () => {
    expect(UI_LANGUAGES.length).toBeGreaterThanOrEqual(4);
    const i18n = createI18n({ lng: 'en' });
    expect(UI_LANGUAGES.map((l) => i18n.dir(l.code))).toContain('rtl');
  });

  for (const { code } of UI_LANGUAGES) {
    it(`${code}: every English key, no other, none empty, the same placeholders and tags`, () => {
      const texts = flatten(CATALOGS[code]);
      expect([...texts.keys()].sort()).toEqual([...english.keys()].sort());
      for (const [key, text] of texts) {
        expect(text.trim(), `${code} ${key}`).not.toBe('');
        expect(markers(text), `${code} ${key}`).toEqual(markers(english.get(key)!));
      }
    });
  }

  it('translations are translations: most texts differ from the English', () => {
    for (const { code } of UI_LANGUAGES.filter((l) => l.code !== 'en')) {
      const texts = flatten(CATALOGS[code]);
      // Names of places (Europe, Asia) are often written alike: they do not count.
      const same = [...texts].filter(([k, v]) => english.get(k) === v && !k.startsWith('regions.') && !/^[^a-z]*$|^Dyad$|^Esc$/i.test(v));
      // Words shared by both languages (Chat, Message) are few.
      expect(same.length, `${code}: ${same.map(([k]) => k).join(', ')}`).toBeLessThanOrEqual(3);
    }
  });

  it('a missing key throws in strict mode instead of showing the key', () => {
    const i18n = createI18n({ lng: 'en', strict: true });
    expect(i18n.t('chat.next')).toBe('Next');
    expect(() => i18n.t('chat.nope' as 'chat.next')).toThrow(/untranslated key: chat.nope/);
  });
});

describe('the page follows the language', () => {
  it('sets lang, dir and title, and mirrors for Arabic when switched', async () => {
    const i18n = createI18n({ lng: 'en', strict: true });
    const stop = followLanguage(i18n);
    render(
      <I18nextProvider i18n={i18n}>
        <LanguageSwitch />
      </I18nextProvider>,
    );
    expect(document.documentElement.dir).toBe('ltr');
    const select = screen.getByLabelText('Interface language') as HTMLSelectElement;
    select.value = 'ar';
    select.dispatchEvent(new Event('change', { bubbles: true }));
    await i18n.changeLanguage('ar');
    expect(document.documentElement.lang).toBe('ar');
    expect(document.documentElement.dir).toBe('rtl');
    expect(document.title).toBe(CATALOGS.ar.app.title);
    expect(screen.getByLabelText(CATALOGS.ar.app.uiLanguage)).toBeTruthy();
    expect(localStorage.getItem('dyad.uiLang')).toBe('ar');
    stop();
  });

  it('a browser language with a region picks its language; an unknown one falls back to English', () => {
    expect(createI18n({ lng: 'es-MX' }).t('landing.start')).toBe(CATALOGS.es.landing.start);
    expect(createI18n({ lng: 'fr-CA' }).resolvedLanguage).toBe('fr');
    expect(createI18n({ lng: 'xx' }).t('landing.start')).toBe('Start');
  });
});

describe('components write no text of their own', () => {
  const uiDir = join(__dirname, '../ui');
  const files = readdirSync(uiDir).filter((f) => f.endsWith('.tsx') && !f.endsWith('.test.tsx'));
  /** Attributes people see or hear. */
  const SPOKEN = new Set(['aria-label', 'aria-description', 'title', 'placeholder', 'alt', 'label']);
  /** A word: a letter of any script. */
  const WORD = /\p{L}/u;

  /** Literal words in JSX text, or in a spoken attribute given a string, found by the TypeScript parser. */
  function literals(source: string): string[] {
    const file = ts.createSourceFile('x.tsx', source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TSX);
    const found: string[] = [];
    const visit = (node: ts.Node): void => {
      if (ts.isJsxText(node) && WORD.test(node.text)) found.push(node.text.trim());
      if (ts.isJsxAttribute(node) && SPOKEN.has(node.name.getText(file)) && node.initializer) {
        const init = node.initializer;
        const literal = ts.isStringLiteral(init)
          ? init
          : ts.isJsxExpression(init) && init.expression && ts.isStringLiteralLike(init.expression)
            ? init.expression
            : null;
        if (literal && WORD.test(literal.text)) found.push(`${node.name.getText(file)}="${literal.text}"`);
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
    return found;
  }

  it('finds a literal where there is one (the scan sees what it must)', () => {
    expect(literals('const a = <button aria-label="Close" title={"Shut"}>Close</button>;')).toEqual([
      'aria-label="Close"',
      'title="Shut"',
      'Close',
    ]);
    expect(literals('const a = <p title={t(\'x\')}>{t(\'x\')} · ×</p>;')).toEqual([]);
  });

  for (const file of files) {
    it(file, () => {
      expect(literals(readFileSync(join(uiDir, file), 'utf8'))).toEqual([]);
    });
  }
});
