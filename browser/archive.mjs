// Headless Chromium reads the public archive as a supporter would, in English and in Spanish, on a
// phone (dark colour scheme) and a computer (light): the list, a newsletter with a version in each
// language, one in English only (the Spanish page says so), and the page of a newsletter that is not
// public. Each page: axe-core (WCAG 2.0/2.1/2.2 A and AA) with no violations, <html lang>, one <h1>
// with the catalog's wording, no console error (a CSP violation is one), nothing wider than a phone;
// the copy loads in its sandboxed frame, names nobody, and its personal links open the page's note
// about each reader's own links in the whole window. Screenshots: SHOT_DIR/{lang}-{width}-{page}.png.
//
// browser/run.sh starts Enlace and this script after the console's; see README §9 "Browser test".
//   ENLACE_URL, SHOT_DIR, ORG, STAFF_EMAIL, STAFF_PASSWORD (a staff account, to publish two newsletters)
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { parse as parseToml } from "smol-toml";
import { api, DESKTOP, env, fail, fill, newTab, PHONE, squash, staffToken } from "./console-kit.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const ENLACE_URL = env("ENLACE_URL").replace(/\/$/, "");
const SHOT_DIR = env("SHOT_DIR");
const ORG = env("ORG");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOTAL_SECONDS = 150;
const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const T = Object.fromEntries(["en", "es"].map((lang) => [lang, parseToml(readFileSync(join(ROOT, `locales/${lang}.toml`), "utf8"))]));

const deadline = setTimeout(() => fail(`the archive walk took longer than ${TOTAL_SECONDS} s`), TOTAL_SECONDS * 1000);
const problems = [];
const check = (condition, message) => { if (!condition) problems.push(message); };

// ------------------------------------------------------------- two newsletters, published and sent
const HTML = `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Rally</title>
<style>.box{max-width:560px;margin:0 auto;padding:16px;font-family:Georgia,serif;color:#222}</style></head>
<body><div class="box"><h1 style="color:#0b5d3b">Rally on Saturday</h1><p>Hi {{ name or 'friend' }},</p>
<p>Join us on Saturday at 10:00 in front of city hall.</p>
<p><a href="https://example.org/rally">Details</a> · <a href="{{ preferences_url }}">Your topics</a></p></div></body></html>`;
const HTML_ES = HTML.replace("Rally on Saturday", "Marcha el sábado").replace("Hi {{ name or 'friend' }},", "Hola {{ name or 'amiga, amigo' }}:")
  .replace("Join us on Saturday at 10:00 in front of city hall.", "Te esperamos el sábado a las 10:00 frente al ayuntamiento.")
  .replace(">Details<", ">Detalles<").replace(">Your topics<", ">Tus temas<");

async function publish(token, body) {
  // Nobody on the list matches: the send starts and ends at once, and the newsletter is public.
  const draft = await api(token, "POST", "/newsletters", { ...body, archived: true, filter: { email_domain: "nobody.invalid" } });
  await api(token, "POST", `/newsletters/${draft.id}/send`);
  for (let i = 0; i < 100; i++) {
    if ((await api(token, "GET", `/newsletters/${draft.id}`)).status === "sent") return draft.id;
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`newsletter “${body.subject}” was not sent within 20 s`);
}

// --------------------------------------------------------------- one page
async function checkPage(page, where, lang, expectedH1) {
  const facts = await page.evaluate(() => ({
    lang: document.documentElement.getAttribute("lang"),
    h1: [...document.querySelectorAll("h1")].map((h) => h.innerText),
    width: document.scrollingElement.scrollWidth,
  }));
  check(facts.lang === lang, `${where}: <html lang="${facts.lang}">, expected "${lang}"`);
  check(facts.h1.length === 1 && squash(facts.h1[0]) === squash(expectedH1),
    `${where}: <h1> ${JSON.stringify(facts.h1)}, expected “${expectedH1}”`);
  const viewport = page.viewportSize();
  check(facts.width <= viewport.width + 1, `${where}: the page is ${facts.width}px wide at ${viewport.width}px`);
  // Through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] }),
    AXE_TAGS,
  );
  for (const v of result.violations) {
    for (const node of v.nodes) problems.push(`${where}: axe ${v.id} (${node.impact}) at ${node.target.join(" ")}: ${v.help}`);
  }
  for (const seen of page.seen.splice(0)) problems.push(`${where}: ${seen}`);
}

async function walk(browser, lang, viewport, ids) {
  const t = T[lang];
  const dark = viewport === PHONE;
  const page = await newTab(browser, lang, viewport, dark ? "dark" : "light");
  const shot = (name) => page.screenshot({ path: join(SHOT_DIR, `${lang}-${viewport.width}-${name}.png`), fullPage: true });
  const where = (name) => `${lang} ${viewport.width}px ${name}`;

  // The list: both newsletters, newest first, in this language.
  let res = await page.goto(`${ENLACE_URL}/archive/${lang}`);
  check(res.status() === 200, `${where("list")}: ${res.status()}`);
  await checkPage(page, where("list"), lang, fill(t.pages.archive.heading, { org: ORG }));
  const titles = await page.locator("ul.archive li a").allInnerTexts();
  const expected = ["Letter to the council", lang === "en" ? "Rally on Saturday, friend" : "Marcha el sábado, amiga"];
  check(JSON.stringify(titles.slice(0, 2)) === JSON.stringify(expected), `${where("list")}: lists ${JSON.stringify(titles)}`);
  const feed = await page.locator('link[rel="alternate"][type="application/atom+xml"]').getAttribute("href");
  const feedRes = await fetch(feed);
  check((feedRes.headers.get("content-type") ?? "").startsWith("application/atom+xml"), `${where("list")}: the feed is ${feedRes.headers.get("content-type")}`);
  await shot("list");

  // A newsletter with both versions: its copy in the frame, rendered for nobody.
  res = await page.goto(`${ENLACE_URL}/archive/${lang}/${ids.both}`);
  check(res.status() === 200, `${where("newsletter")}: ${res.status()}`);
  await checkPage(page, where("newsletter"), lang, lang === "en" ? "Rally on Saturday, friend" : "Marcha el sábado, amiga");
  const frame = page.frameLocator("iframe.newsletter");
  const greeting = squash(await frame.locator("p").first().innerText());
  check(greeting === (lang === "en" ? "Hi friend," : "Hola amiga, amigo:"), `${where("newsletter")}: the copy greets “${greeting}”`);
  const note = squash(await frame.locator("#links p").first().innerText());
  check(note === fill(t.pages.archive.copy.note, { org: ORG }), `${where("newsletter")}: the copy's footer reads “${note}”`);
  await shot("newsletter");
  // Its personal link leads, in the whole window, to the note about each reader's own links.
  await Promise.all([
    page.waitForURL(`${ENLACE_URL}/archive/${lang}/${ids.both}#links`),
    frame.getByRole("link", { name: lang === "en" ? "Your topics" : "Tus temas" }).click(),
  ]);
  check(await page.locator("#links").isVisible(), `${where("newsletter")}: no note about readers' own links`);
  for (const seen of page.seen.splice(0)) problems.push(`${where("newsletter, after the click")}: ${seen}`);

  // English only: the Spanish page says so, and marks the content's language.
  res = await page.goto(`${ENLACE_URL}/archive/${lang}/${ids.english}`);
  check(res.status() === 200, `${where("english-only")}: ${res.status()}`);
  await checkPage(page, where("english-only"), lang, "Letter to the council");
  const notice = await page.locator(".notice.warn").count();
  check(notice === (lang === "es" ? 1 : 0), `${where("english-only")}: ${notice} notices that the version is another language's`);
  if (lang === "es") {
    check(await page.locator('h1[lang="en"]').count() === 1, `${where("english-only")}: the heading is not marked lang="en"`);
  }
  await shot("english-only");

  // Not public (never sent, withdrawn or unknown): a page that says so, with the way to the list.
  page.expectError = true;
  res = await page.goto(`${ENLACE_URL}/archive/${lang}/01a24db3-1cb4-7731-aa5d-be93868ef9e3`);
  page.expectError = false;
  check(res.status() === 404, `${where("not-public")}: ${res.status()}`);
  // The 404 asked for is reported by the tab too; nothing else may be.
  page.seen.splice(0, page.seen.length, ...page.seen.filter((s) => !s.includes("status of 404")));
  await checkPage(page, where("not-public"), lang, t.pages.archive.gone.heading);
  await shot("not-public");
  await page.context().close();
}

mkdirSync(SHOT_DIR, { recursive: true });
const started = Date.now();
const token = await staffToken(env("STAFF_EMAIL"), env("STAFF_PASSWORD"));
const both = await publish(token, {
  subject: "Rally on Saturday, {{ name or 'friend' }}",
  html: HTML,
  variants: { es: { subject: "Marcha el sábado, {{ name or 'amiga' }}", html: HTML_ES } },
});
const english = await publish(token, {
  subject: "Letter to the council",
  html: "<p>Hi {{ name or 'friend' }},</p><p>We wrote to the council about the cameras on Main Street.</p><p><a href=\"{{ unsubscribe_url }}\">Leave the list</a></p>",
});
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let walks = 0;
for (const lang of ["en", "es"]) {
  for (const viewport of [DESKTOP, PHONE]) {
    try {
      await walk(browser, lang, viewport, { both, english });
      walks += 1;
    } catch (err) {
      problems.push(`${lang} ${viewport.width}px: ${err.message.split("\n")[0]}`);
    }
  }
}
await browser.close();
clearTimeout(deadline);
for (const p of problems) console.error(`FAIL archive: ${p}`);
console.log(`archive: ${walks} walks (list, two newsletters, a page not public) in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
  `${problems.length} problems; screenshots in ${SHOT_DIR}`);
process.exit(problems.length ? 1 : 0);
