// Headless Chromium checks the staff console as staff members use it, in English and in Spanish:
//
// 1. For each role (admin, editor, viewer) and language (en, es, chosen on the account page), signs in
//    and crawls every console page the member can reach by following links from the dashboard, and
//    checks each one with axe-core (WCAG 2.0/2.1/2.2 A and AA): no violations, <html lang> is the
//    language, exactly one <h1>, no console errors (a Content-Security-Policy violation is one), no
//    HTTP error. The sign-in page and the not-found page are checked the same way.
// 2. Screenshots of every page the admin reaches at 390×844 (phone) and 1280×800 (desktop), in both
//    languages, into SHOT_DIR (role-lang-width-path.png); at 390px nothing may scroll sideways
//    except inside elements meant to (.table-wrap, .chart-scroll). The phone pass uses the dark colour scheme and
//    runs axe-core again, so both palettes are checked for contrast.
// 3. Keyboard alone (no mouse, no element.click()): signs in, uses the skip link, reaches the account
//    page, switches to Spanish, changes the password, signs out, signs in with the new password.
//    Every focused control must show a visible focus indicator. browser/console-keyboard.mjs walks a
//    people search and adding a person, an import and creating an API key the same way.
// 4. First of all, the main flows in both languages (browser/console-flows.mjs): people, interests
//    and fields, an import, an export, staff, API keys and webhooks, and what viewers and editors may
//    not do, by clicking and typing; what they leave behind is then part of the crawl.
// 5. Then the newsletters in both languages (browser/console-newsletters.mjs): a draft written in
//    English and Spanish side by side, its autosave and a colleague's save in a second tab (the
//    conflict reported, nothing overwritten), the preview (sample data and a person, phone and
//    desktop frames, text part), a test send and a send reaching the SMTP sink while the page
//    follows its progress to sent, a send scheduled in the member's time zone and cancelled, a sent
//    newsletter duplicated, sent, paused and resumed, and what a viewer is not offered; and a
//    keyboard-only walk from a new draft to its preview.
//
// One line per flow and walk with its time; a failure names the step. BROWSER_FLOWS=0 skips the
// flows, the newsletters' included (the keyboard walks need no data of theirs).
//
// New console pages are covered by the crawl as soon as a link leads to them. A keyboard walk for a
// new area is a walk of a few lines in browser/console-keyboard.mjs, with the helpers of
// browser/console-kit.mjs: navTo(page, "Entry") follows a navigation entry,
// tabTo(page, "f-field" | /Name/) moves the focus with Tab (Shift+Tab with { back: true }),
// tabThrough(page, [...]) asserts the exact Tab order, typeInto() types into a field and
// pressAndLoad(page, "Enter", urlTest) submits or follows and waits for the next page.
//
// browser/run.sh starts Enlace and this script. Settings come from the environment:
//   ENLACE_URL      Enlace's public URL
//   CONSOLE_PATH    the console's path (/admin)
//   SHOT_DIR        folder for the screenshots
//   STAFF_PASSWORD  the password of every account below
//   ADMIN_EMAIL, EDITOR_EMAIL, VIEWER_EMAIL, KEYBOARD_EMAIL   staff accounts (the last one, an
//                   editor, is the one whose password the keyboard walk changes)
//   FLOWS_EN_EMAIL, FLOWS_ES_EMAIL, WALKER_EMAIL   admins for the flows in each language and for
//                   the keyboard walks of browser/console-keyboard.mjs
//   NEWSLETTERS_EN_EMAIL, NEWSLETTERS_ES_EMAIL, NEWSLETTERS_VIEWER_EMAIL, NEWSLETTERS_KEYBOARD_EMAIL
//                   admins for the newsletters in each language, a viewer, and an editor for the
//                   keyboard-only newsletter walk
//   MAIL_DIR        the SMTP sink's folder (the mails the flows send: a confirmation, newsletters)
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { runFlows } from "./console-flows.mjs";
import { keyboardWalks } from "./console-keyboard.mjs";
import { newsletterFlows, newsletterKeyboardWalk } from "./console-newsletters.mjs";
import {
  CONSOLE, DESKTOP, ENLACE_URL, PHONE, env, fail, focused, label, navTo, newTab, pressAndLoad, signIn,
  chooseLanguage, squash, tabThrough, tabTo, typeInto,
} from "./console-kit.mjs";

const SHOT_DIR = env("SHOT_DIR");
const PASSWORD = env("STAFF_PASSWORD");
const ACCOUNTS = {
  admin: env("ADMIN_EMAIL"),
  editor: env("EDITOR_EMAIL"),
  viewer: env("VIEWER_EMAIL"),
};
const KEYBOARD_EMAIL = env("KEYBOARD_EMAIL");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOTAL_SECONDS = Number(process.env.CONSOLE_SECONDS ?? 330);
// A crawl stops after this many pages per role and language (a runaway list of links is a fault).
const MAX_PAGES = Number(process.env.CONSOLE_MAX_PAGES ?? 80);
// At most this many pages per path pattern (numbers and ids in a path count as one pattern):
// one person's page stands for all of them.
const PER_PATTERN = 2;
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const deadline = setTimeout(() => fail(`the console checks took longer than ${TOTAL_SECONDS} s`), TOTAL_SECONDS * 1000);

const problems = [];
// axe-core's findings, one entry per rule and element, with every page (and language) it is on.
const violations = new Map();
const problem = (text) => problems.push(text);
const stats = { pages: {}, shots: 0, axeRuns: 0 };

// --------------------------------------------------------------- pages
// axe-core, the <html lang>, one <h1>, and what the tab reported while loading the page.
async function checkPage(page, where, lang) {
  const here = `${where} ${label(page.url())}`;
  for (const seen of page.seen.splice(0)) problem(`${here}: ${seen}`);
  const facts = await page.evaluate(() => ({
    lang: document.documentElement.getAttribute("lang"),
    h1: document.querySelectorAll("h1").length,
    stamps: (document.querySelector("main")?.innerText.match(/\b\d{4}-\d\d-\d\dT\d\d:\d\d\S*/g) ?? []).slice(0, 2),
  }));
  if (facts.lang !== lang) problem(`${here}: <html lang="${facts.lang}">, expected "${lang}"`);
  if (facts.h1 !== 1) problem(`${here}: ${facts.h1} <h1> elements, expected exactly one`);
  // Dates are for people: in the member's time zone and words, never a machine's timestamp.
  if (facts.stamps.length) problem(`${here}: shows a raw timestamp (${facts.stamps.join(", ")}), not a date in the member's time zone`);
  // Evaluated through the DevTools protocol, which the page's CSP does not govern: the page keeps
  // its policy, so a violation of its own still shows as a console error.
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
    AXE_TAGS,
  );
  stats.axeRuns += 1;
  for (const v of result.violations) {
    for (const node of v.nodes) {
      const key = `axe ${v.id} (${node.impact ?? v.impact}) at ${node.target.join(" ")}: ${v.help}`;
      if (!violations.has(key)) violations.set(key, { summary: squash(node.failureSummary).slice(0, 300), pages: [] });
      if (!violations.get(key).pages.includes(here)) violations.get(key).pages.push(here);
    }
  }
  for (const seen of page.seen.splice(0)) problem(`${here}: ${seen}`);
}

// Nothing may scroll sideways on a phone, except inside an element meant to (.table-wrap).
async function checkPhoneWidth(page, where, limit = PHONE.width) {
  const width = await page.evaluate(() => document.scrollingElement.scrollWidth);
  if (width > limit + 1) {
    // What sticks out: a box past the edge, or a box whose content (a long word) spills out of it.
    const wide = await page.evaluate((limit) => [...document.querySelectorAll("body *")]
      .filter((el) => (!el.parentElement.closest(".table-wrap, .chart-scroll") || getComputedStyle(el).position === "absolute") &&
        (el.getBoundingClientRect().right > limit ||
        (el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible")))
      .filter((el, _, all) => !all.some((other) => other !== el && el.contains(other)))
      .slice(0, 3)
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ""}${el.className ? `.${String(el.className).split(" ").join(".")}` : ""}`),
    limit + 1);
    problem(`${where} ${label(page.url())}: the page is ${width}px wide at ${limit}px (${wide.join(", ")})`);
  }
}

const shotName = (role, lang, width, url) => {
  const path = label(url).replace(/^\/+/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/_+$/, "") || "dashboard";
  return `${role}-${lang}-${width}-${path}.png`;
};

async function shoot(page, role, lang, url) {
  await page.screenshot({ path: join(SHOT_DIR, shotName(role, lang, page.viewportSize().width, url)), fullPage: true });
  stats.shots += 1;
}

// ------------------------------------------------------------- the crawl
// Links to follow: same origin, under the console, GET only; never sign-out (a form anyway), static
// files, downloads (a download attribute, export or report paths), nor a second query string per path.
function crawlable(href, hasDownload) {
  let u;
  try {
    u = new URL(href);
  } catch {
    return null;
  }
  if (u.origin !== ENLACE_URL || hasDownload) return null;
  if (!(u.pathname === CONSOLE || u.pathname.startsWith(`${CONSOLE}/`))) return null;
  const rest = u.pathname.slice(CONSOLE.length);
  if (/^\/(static|sign-out|sign-in)(\/|$)/.test(rest)) return null;
  // Downloads: a download, file or report segment, or a file name (an export's .csv, say).
  const segments = rest.split("/");
  if (segments.some((seg) => /^(downloads?|files?|reports?|raw)$/.test(seg))) return null;
  if (/\.(csv|json|ndjson|zip|xlsx|txt|gz)$/.test(rest)) return null;
  u.hash = "";
  return u;
}

const pattern = (pathname) =>
  pathname.split("/").map((s) => (/^(\d+|[0-9a-f-]{16,}|[A-Za-z0-9_-]{20,})$/.test(s) ? "*" : s)).join("/");

async function crawl(page, where, lang, onPage) {
  const start = `${ENLACE_URL}${CONSOLE}/`;
  const queue = [start];
  const queued = new Set([start]);
  const withQuery = new Set();
  const perPattern = new Map();
  let count = 0;
  while (queue.length) {
    const url = queue.shift();
    if (count >= MAX_PAGES) {
      problem(`${where}: more than ${MAX_PAGES} pages reachable; the rest were not checked (${queue.length} left)`);
      break;
    }
    count += 1;
    let response;
    try {
      response = await page.goto(url);
    } catch (err) {
      // A link that starts a download without saying so.
      if (/Download is starting/.test(err.message)) {
        problem(`${where} ${label(url)}: the link starts a download but has no download attribute`);
        continue;
      }
      throw err;
    }
    if (!response) {
      problem(`${where} ${label(url)}: no response`);
      continue;
    }
    if (new URL(page.url()).pathname.startsWith(`${CONSOLE}/sign-in`)) {
      problem(`${where} ${label(url)}: the link led to the sign-in page (signed out?)`);
      break;
    }
    const type = response.headers()["content-type"] ?? "";
    if (!type.startsWith("text/html")) {
      problem(`${where} ${label(url)}: a link leads to ${type || "no content type"}, not a page (mark it with download)`);
      page.seen.splice(0);
      continue;
    }
    await onPage(page, url);
    const links = await page.$$eval("a[href]", (as) => as.map((a) => [a.href, a.hasAttribute("download")]));
    for (const [href, download] of links) {
      const u = crawlable(href, download);
      if (!u) continue;
      const key = u.href;
      if (queued.has(key)) continue;
      if (u.search) {
        if (withQuery.has(u.pathname)) continue;
        withQuery.add(u.pathname);
      }
      const p = pattern(u.pathname) + (u.search ? "?" : "");
      const n = perPattern.get(p) ?? 0;
      if (n >= PER_PATTERN) continue;
      perPattern.set(p, n + 1);
      queued.add(key);
      queue.push(key);
    }
  }
  return count;
}

async function checkRole(browser, role) {
  const page = await newTab(browser, "en");
  try {
    await signIn(page, ACCOUNTS[role], PASSWORD, "en");
    for (const lang of ["en", "es"]) {
      await chooseLanguage(page, lang);
      const where = `${role}/${lang}`;
      const visited = [];
      const pages = await crawl(page, where, lang, async (p, url) => {
        await checkPage(p, where, lang);
        if (role === "admin") {
          visited.push(url);
          await shoot(p, role, lang, url);
        }
      });
      stats.pages[where] = pages;
      if (role === "admin") {
        // The same pages on a phone in the dark colour scheme (the stylesheet's other palette): the
        // layout must fit, axe-core checks the dark colours' contrast, and the screenshots show it.
        const phone = await newTab(browser, lang, PHONE, "dark");
        await phone.context().addCookies(await page.context().cookies());
        for (const url of visited) {
          await phone.goto(url);
          await checkPhoneWidth(phone, `${where} phone`);
          // The narrowest phones (320px) must fit too.
          await phone.setViewportSize({ width: 320, height: PHONE.height });
          await checkPhoneWidth(phone, `${where} 320px`, 320);
          await phone.setViewportSize(PHONE);
          await checkPage(phone, `${where} phone, dark`, lang);
          await shoot(phone, role, lang, url);
        }
        await phone.context().close();
      }
    }
  } finally {
    await page.context().close();
  }
}

// The public pages: sign-in (and a failed one) and not found, in both languages, on a desktop in the
// light colour scheme and on a phone in the dark one.
async function checkPublicPages(browser) {
  for (const lang of ["en", "es"]) {
    for (const viewport of [DESKTOP, PHONE]) {
      const page = await newTab(browser, lang, viewport, viewport === PHONE ? "dark" : "light");
      try {
        await page.goto(`${ENLACE_URL}${CONSOLE}/sign-in?lang=${lang}`);
        await checkPage(page, `public/${lang}/${viewport.width}px`, lang);
        if (viewport === PHONE) await checkPhoneWidth(page, `public/${lang}/${viewport.width}px`);
        await shoot(page, "public", lang, page.url());
        // A failed sign-in shows its message in the page's language.
        await page.locator("#f-email").fill("nobody@example.org");
        await page.locator("#f-password").fill("not the password");
        await Promise.all([page.waitForLoadState(), page.locator('form[action$="/sign-in"] button[type="submit"]').click()]);
        await page.locator('[role="alert"]').waitFor();
        page.seen.splice(0).filter((s) => !/^4\d\d /.test(s) && !s.includes("Failed to load resource")).forEach((s) => problem(`public/${lang}/${viewport.width}px failed sign-in: ${s}`));
        await checkPage(page, `public/${lang}/${viewport.width}px failed sign-in`, lang);
        page.expectError = true;
        await page.goto(`${ENLACE_URL}${CONSOLE}/no-such-page?lang=${lang}`);
        page.seen.splice(0).filter((s) => !s.startsWith("404 ") && !s.includes("Failed to load resource")).forEach((s) => problem(`public/${lang}/${viewport.width}px not found: ${s}`));
        await checkPage(page, `public/${lang}/${viewport.width}px not found`, lang);
        await shoot(page, "public", lang, `${ENLACE_URL}${CONSOLE}/not-found`);
      } finally {
        await page.context().close();
      }
    }
  }
  stats.pages["public/en+es"] = 3;
}

// ------------------------------------------------------------ keyboard alone
async function keyboardWalk(browser) {
  const page = await newTab(browser, "en");
  const newPassword = `${PASSWORD} changed by keyboard`;
  const steps = [];
  let step = "sign in";
  try {
    await page.goto(`${ENLACE_URL}${CONSOLE}/sign-in?lang=en`);
    // In order: the skip link, the console's name (a link home), the address, the password, the
    // button, the other language.
    await tabThrough(page, [/^Skip to main content$/, /Console$/, "f-email", "f-password", /^Sign in$/, /^Español$/]);
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Shift+Tab");
    const f = await focused(page);
    if (f.id !== "f-email") throw new Error(`Shift+Tab went back to ${f.kind} “${f.name}”, expected the address field`);
    await page.keyboard.type(KEYBOARD_EMAIL);
    await typeInto(page, "f-password", PASSWORD);
    await pressAndLoad(page, "Enter", (u) => !u.pathname.endsWith("/sign-in"));
    steps.push("sign-in page in order (skip link, home, address, password, button, language), signed in with Enter");

    step = "skip link";
    await tabTo(page, "Skip to main content", { max: 1 });
    await page.keyboard.press("Enter");
    const inMain = await page.evaluate(() => document.activeElement?.id === "main");
    if (!inMain) throw new Error("after Enter on the skip link the focus is not on <main>");
    steps.push("skip link moves the focus to main");

    step = "account page";
    // Back up into the header: the account link (the member's address) is there.
    await tabTo(page, /^Account|^Your account|f-account|@/, { back: true });
    await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/account"));
    steps.push("account page reached from the header with Shift+Tab and Enter");

    step = "account page order";
    // Every control of both forms, in reading order, then back to the first one.
    await tabTo(page, "f-language");
    await tabThrough(page, ["f-time_zone", /^Save/, "f-current_password", "f-new_password", "f-repeat_password", /^Change/]);
    for (let i = 0; i < 6; i += 1) await page.keyboard.press("Shift+Tab");
    if ((await focused(page)).id !== "f-language") throw new Error("Shift+Tab did not lead back to the language");
    steps.push("account page: every control in reading order, forwards and back");

    step = "language";
    // Arrow keys on a closed <select> change its value in Chromium, as they do for a keyboard user.
    for (let i = 0; i < 4 && (await page.locator("#f-language").inputValue()) !== "es"; i += 1) {
      await page.keyboard.press("ArrowDown");
    }
    if ((await page.locator("#f-language").inputValue()) !== "es") throw new Error("arrow keys did not reach Español");
    await tabTo(page, /^Save/);
    await pressAndLoad(page, "Enter", (u) => u.search.includes("notice=") || u.pathname.endsWith("/account"));
    const lang = await page.evaluate(() => document.documentElement.lang);
    if (lang !== "es") throw new Error(`after saving Español the page is in “${lang}”`);
    steps.push("language switched to Spanish with arrow keys and Enter");

    step = "password";
    await typeInto(page, "f-current_password", PASSWORD);
    await typeInto(page, "f-new_password", newPassword);
    await typeInto(page, "f-repeat_password", newPassword);
    await tabTo(page, /^Cambiar/);
    await pressAndLoad(page, "Enter", (u) => u.search.includes("notice=") || u.pathname.endsWith("/account"));
    const notice = squash(await page.locator('[role="status"]').first().innerText().catch(() => ""));
    if (!notice) throw new Error("no confirmation after changing the password");
    await checkPage(page, "keyboard/es", "es");
    steps.push(`password changed (“${notice.slice(0, 50)}”)`);

    step = "navigation";
    // A freshly loaded page starts at its top: the navigation is a few Tabs away.
    await navTo(page, "Panel");
    steps.push("dashboard reached through the navigation (aria-current on it)");

    step = "sign out";
    await tabTo(page, /^Cerrar sesión/);
    await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/sign-in"));
    steps.push("signed out with Tab and Enter");

    step = "sign in again";
    await tabTo(page, "f-email");
    await page.keyboard.type(KEYBOARD_EMAIL);
    await typeInto(page, "f-password", newPassword);
    // Space on the submit button works as well as Enter in a field.
    await tabTo(page, /^(Entrar|Iniciar sesión|Sign in)/);
    await pressAndLoad(page, "Space", (u) => !u.pathname.endsWith("/sign-in"));
    const back = await page.evaluate(() => document.documentElement.lang);
    if (back !== "es") throw new Error(`signed in again, the console is in “${back}”, expected the saved “es”`);
    steps.push("signed in again with the new password (Space on the button), still in Spanish");
    for (const seen of page.seen.splice(0)) problem(`keyboard: ${seen}`);
    console.log(`ok   keyboard alone: ${steps.join("; ")}`);
  } catch (err) {
    await page.screenshot({ path: join(SHOT_DIR, `keyboard-FAILED.png`), fullPage: true }).catch(() => {});
    problem(`keyboard walk, step “${step}”: ${err.message.split("\n")[0]} (screenshot keyboard-FAILED.png)`);
  } finally {
    await page.context().close();
  }
}

// ---------------------------------------------------------------------- run
mkdirSync(SHOT_DIR, { recursive: true });
const started = Date.now();
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const timings = [];
const timed = async (name, run) => {
  const t0 = Date.now();
  try {
    await run();
  } catch (err) {
    problem(`${name}: ${err.message.split("\n")[0]}`);
  }
  timings.push(`${name} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
};
// One line per flow or walk, with its time; a failure names its step.
const flowReport = (name, seconds, error) => {
  if (error) problem(`${name}, ${error}`);
  if (seconds) console.log(`${error ? "FAIL" : "ok  "} ${name.padEnd(20)} ${seconds.toFixed(1).padStart(5)} s${error ? `: ${error}` : ""}`);
};
await timed("public pages", () => checkPublicPages(browser));
// The flows first: what they leave (people with histories, an import with a report, a webhook with a
// delivery) is then part of every role's crawl. BROWSER_FLOWS=0 skips them.
if (process.env.BROWSER_FLOWS !== "0") {
  await timed("flows", () => runFlows(browser, {
    accounts: { en: env("FLOWS_EN_EMAIL"), es: env("FLOWS_ES_EMAIL"), viewer: ACCOUNTS.viewer, editor: ACCOUNTS.editor },
    password: PASSWORD,
    mailDir: env("MAIL_DIR"),
    shotDir: SHOT_DIR,
    checkPage,
    report: flowReport,
  }));
  await timed("newsletters", () => newsletterFlows(browser, {
    accounts: { en: env("NEWSLETTERS_EN_EMAIL"), es: env("NEWSLETTERS_ES_EMAIL"), viewer: env("NEWSLETTERS_VIEWER_EMAIL") },
    password: PASSWORD, mailDir: env("MAIL_DIR"), shotDir: SHOT_DIR, checkPage, report: flowReport,
  }));
}
// The admin's pass (both widths, screenshots) alongside the editor's and the viewer's (axe only).
await Promise.all([
  timed("admin", () => checkRole(browser, "admin")),
  (async () => {
    await timed("editor", () => checkRole(browser, "editor"));
    await timed("viewer", () => checkRole(browser, "viewer"));
    await timed("keyboard", () => keyboardWalk(browser));
    await timed("keyboard walks", () => keyboardWalks(browser, { email: env("WALKER_EMAIL"), password: PASSWORD, report: flowReport }));
    await timed("keyboard newsletter", () => newsletterKeyboardWalk(browser, { email: env("NEWSLETTERS_KEYBOARD_EMAIL"), password: PASSWORD, report: flowReport }));
  })(),
]);
await browser.close();
clearTimeout(deadline);

for (const [where, n] of Object.entries(stats.pages).sort()) console.log(`ok   ${where}: ${n} pages checked`);
const axeFound = [...violations.values()].reduce((n, v) => n + v.pages.length, 0);
console.log(`${stats.axeRuns} axe-core runs (${AXE_TAGS.join(", ")}): ${axeFound} violations; ` +
  `${problems.length} other problems; ${stats.shots} screenshots in ${SHOT_DIR}`);
console.log(`timings: ${timings.join(", ")}; total ${((Date.now() - started) / 1000).toFixed(1)} s`);
if (violations.size || problems.length) {
  console.error(`FAIL console: ${violations.size} distinct axe-core violations (${axeFound} in all), ${problems.length} other problems`);
  for (const [key, v] of violations) {
    const pages = v.pages.length > 6 ? `${v.pages.slice(0, 6).join("; ")}; and ${v.pages.length - 6} more` : v.pages.join("; ");
    console.error(`  - ${key}${v.summary ? ` — ${v.summary}` : ""}\n      on ${pages}`);
  }
  for (const p of [...new Set(problems)]) console.error(`  - ${p}`);
  process.exit(1);
}
console.log("console: all pages pass axe-core and the checks; every flow and keyboard walk passes");
