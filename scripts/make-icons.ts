// Makes the web app's PNG icons from packages/web/public/favicon.svg with
// Debian's Chromium (the one the browser tests use): the plain icon at 192
// and 512 px, a maskable one at 512 px (the mark inside the 80 % safe zone on
// a full-bleed background) and a 180 px touch icon for iOS. The PNGs are
// committed; run this again after changing the SVG:
//   node --import tsx scripts/make-icons.ts
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const PUBLIC = join(import.meta.dirname, '../packages/web/public');
/** The background of the maskable icon: the mark's own colour, read from the SVG. */
const FALLBACK_BACKGROUND = '#4f46e5';

const svg = await readFile(join(PUBLIC, 'favicon.svg'), 'utf8');
const background = /<rect[^>]*fill="(#[0-9a-fA-F]{3,8})"/.exec(svg)?.[1] ?? FALLBACK_BACKGROUND;
const dataUrl = `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}`;

const icons: { file: string; size: number; maskable: boolean }[] = [
  { file: 'icon-192.png', size: 192, maskable: false },
  { file: 'icon-512.png', size: 512, maskable: false },
  { file: 'icon-maskable-512.png', size: 512, maskable: true },
  { file: 'apple-touch-icon.png', size: 180, maskable: true },
];

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ deviceScaleFactor: 1 });
  for (const { file, size, maskable } of icons) {
    await page.setViewportSize({ width: size, height: size });
    // Maskable: the whole square painted, the mark at 80 % in the middle (the safe zone's circle holds it).
    const inner = maskable ? Math.round(size * 0.8) : size;
    await page.setContent(
      `<html><body style="margin:0;width:${size}px;height:${size}px;display:grid;place-items:center;background:${maskable ? background : 'transparent'}">` +
        `<img src="${dataUrl}" width="${inner}" height="${inner}" style="display:block"></body></html>`,
    );
    await page.locator('img').evaluate((img: HTMLImageElement) => img.decode());
    await page.screenshot({ path: join(PUBLIC, file), omitBackground: !maskable });
    console.log(`${file}: ${size}×${size}${maskable ? ' (maskable)' : ''}`);
  }
} finally {
  await browser.close();
}
