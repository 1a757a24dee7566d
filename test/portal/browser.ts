import { existsSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/*
 * Browser tests drive Debian's chromium (scripts/setup.sh --test installs it) through
 * playwright-core: never a downloaded browser. Each launch gets a fresh profile directory, removed
 * on close, so no cookie or cache leaks from one test into the next.
 */

export const CHROMIUM = '/usr/bin/chromium';

/** Flags for a quiet, reproducible headless Chromium that reaches nothing but the pages it is sent to. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // tests run as root in CI, where Chromium's sandbox cannot start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The repository's root: the nearest folder above this file with a package.json (source or dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('no package.json above the test');
    dir = up;
  }
  return dir;
}

/**
 * The little of the DOM that the functions run inside the page use: the test program is compiled
 * for Node, without the DOM library, and these functions are serialised into the page anyway.
 */
interface DomElement {
  id: string;
  tagName: string;
  getAttribute(name: string): string | null;
}
export interface InPage {
  document: {
    activeElement: DomElement | null;
    documentElement: { scrollWidth: number; clientWidth: number };
    addEventListener(
      type: 'securitypolicyviolation',
      listener: (e: {
        violatedDirective: string;
        blockedURI: string;
        sourceFile: string;
        lineNumber: number;
      }) => void,
    ): void;
  };
  getComputedStyle(element: DomElement): { outlineStyle: string; outlineWidth: string };
  __cspViolations?: string[];
}

export interface TestBrowser {
  context: BrowserContext;
  /** A new tab of the given width (height 900), with CSP violations recorded (see cspViolations). */
  newPage(width?: number): Promise<Page>;
  close(): Promise<void>;
}

/**
 * Launches Debian's Chromium with a fresh profile.
 *
 * @example
 *   const browser = await launchBrowser();
 *   try { const page = await browser.newPage(360); await page.goto(url); } finally { await browser.close(); }
 */
export async function launchBrowser(options: { ignoreHttpsErrors?: boolean } = {}): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run bash scripts/setup.sh --test`);
  const profile = await mkdtemp(join(tmpdir(), 'simcred-chromium-'));
  // launchPersistentContext is playwright's way to pass --user-data-dir (it refuses it among args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    ignoreHTTPSErrors: options.ignoreHttpsErrors ?? false,
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  // Every page reports its CSP violations into window.__cspViolations (an init script runs outside
  // the page's CSP, so this works under script-src 'self').
  await context.addInitScript(() => {
    const w = globalThis as unknown as InPage;
    const violations: string[] = (w.__cspViolations = []);
    w.document.addEventListener('securitypolicyviolation', (e) => {
      violations.push(
        `${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile}:${e.lineNumber})`,
      );
    });
  });
  // The persistent context opens with one blank tab; close it so every test starts from newPage.
  for (const page of context.pages()) await page.close();
  return {
    context,
    async newPage(width = 1280) {
      const page = await context.newPage();
      await page.setViewportSize({ width, height: 900 });
      return page;
    },
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** The CSP violations a page has met so far, with the console's own CSP reports. */
export async function cspViolations(page: Page, consoleLines: string[]): Promise<string[]> {
  const recorded = await page.evaluate(() => (globalThis as unknown as InPage).__cspViolations ?? []);
  return [...recorded, ...consoleLines.filter((l) => /Content Security Policy/i.test(l))];
}

/** Collects the page's console messages and uncaught errors, to assert on after the fact. */
export function recordConsole(page: Page): string[] {
  const lines: string[] = [];
  page.on('console', (m) => lines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`pageerror: ${e.message}`));
  return lines;
}

/** Saves a full-page screenshot as docs/portal/<name>.png (shown in docs/portal.md). */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  const dir = resolve(repoRoot(), 'docs', 'portal');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  // Caret and animations off, so the same page gives the same picture.
  await page.screenshot({ path, fullPage: true, animations: 'disabled', caret: 'hide' });
  return path;
}

/** True when the page is wider than its viewport (a horizontal scroll bar). */
export async function scrollsSideways(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    const root = (globalThis as unknown as InPage).document.documentElement;
    return root.scrollWidth > root.clientWidth;
  });
}

/**
 * Form controls and buttons without a computed accessible name, as Chromium's accessibility tree
 * has them (a <label>, aria-label or aria-labelledby).
 */
export async function unlabelledControls(page: Page): Promise<string[]> {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = (await cdp.send('Accessibility.getFullAXTree')) as {
      nodes: {
        ignored: boolean;
        role?: { value: string };
        name?: { value: string };
        backendDOMNodeId?: number;
      }[];
    };
    const controls = new Set([
      'textbox',
      'searchbox',
      'combobox',
      'checkbox',
      'radio',
      'spinbutton',
      'slider',
      'listbox',
      'button',
    ]);
    const missing: string[] = [];
    for (const node of nodes) {
      if (node.ignored || !controls.has(node.role?.value ?? '')) continue;
      if (!node.name?.value?.trim()) missing.push(`${node.role?.value} (node ${node.backendDOMNodeId})`);
    }
    return missing;
  } finally {
    await cdp.detach();
  }
}

/** What keyboard focus looks like on the focused element: its outline, as computed. */
export async function focusedOutline(
  page: Page,
): Promise<{ id: string; tag: string; type: string; outlineStyle: string; outlineWidth: number }> {
  return page.evaluate(() => {
    const w = globalThis as unknown as InPage;
    const el = w.document.activeElement;
    const style = el ? w.getComputedStyle(el) : null;
    return {
      id: el?.id ?? '',
      tag: el?.tagName.toLowerCase() ?? '',
      type: el?.getAttribute('type') ?? '',
      outlineStyle: style?.outlineStyle ?? 'none',
      outlineWidth: parseFloat(style?.outlineWidth ?? '0'),
    };
  });
}
