// Headless Chromium for the browser tests: Debian's chromium driven by
// playwright-core, with a throwaway profile.
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** Fails with how to get Chromium when it is not installed. */
export function requireChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run scripts/ui-test.sh (installs Debian's chromium)`);
}

/** A browser with one page (30 s default timeout); `close()` also removes the profile. */
export async function launch(viewport) {
  requireChromium();
  const profile = mkdtempSync(path.join(tmpdir(), 'strand-ui-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
  });
  const page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(30_000);
  return {
    browser,
    page,
    close: async () => {
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
