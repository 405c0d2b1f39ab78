// Headless Chromium walks Enlace's signup flow the way a supporter would, in English and in Spanish:
// the README's copy-paste form on a website page, the confirmation mail, the confirmation page and its
// button, the preferences page, the unsubscribe page; then the staff API says the person left.
//
// browser/run.sh starts Enlace, the SMTP sink and this script; see README §9 "Browser test".
// Settings come from the environment:
//   ENLACE_URL      Enlace's public URL (every link in mails and pages must start with it)
//   PAGE_PORT       loopback port for the website page that carries the README's form
//   MAIL_DIR        folder where browser/smtp-sink.mjs writes each message as JSON
//   SHOT_DIR        folder for the screenshots
//   STAFF_EMAIL, STAFF_PASSWORD   a staff account, for the final check through the API
//   ORG             ENLACE_ORG_NAME given to Enlace ("Our Group", as in the README's consent sentence)
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { parse as parseToml } from "smol-toml";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const env = (name) => {
  const value = process.env[name];
  if (!value) fail(`setting ${name} is missing`);
  return value;
};
const ENLACE_URL = env("ENLACE_URL").replace(/\/$/, "");
const PAGE_PORT = Number(env("PAGE_PORT"));
const MAIL_DIR = env("MAIL_DIR");
const SHOT_DIR = env("SHOT_DIR");
const ORG = env("ORG");
const STAFF_EMAIL = env("STAFF_EMAIL");
const STAFF_PASSWORD = env("STAFF_PASSWORD");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOTAL_SECONDS = 120;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// A hard stop, whatever hangs.
const deadline = setTimeout(() => fail(`the walk took longer than ${TOTAL_SECONDS} s`), TOTAL_SECONDS * 1000);

// ------------------------------------------------------------------ wording
const locales = {
  en: parseToml(readFileSync(join(ROOT, "locales/en.toml"), "utf8")),
  es: parseToml(readFileSync(join(ROOT, "locales/es.toml"), "utf8")),
};
const fill = (text, values = {}) => text.replace(/\{(\w+)\}/g, (m, key) => values[key] ?? m);
const squash = (text) => text.replace(/\s+/g, " ").trim();

// ------------------------------------------------------- the README's form
// The form is taken from README.md at every run, so a broken README form breaks this test.
function readmeForms() {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("## 2. A signup form for your website");
  if (start < 0) fail('README.md has no section "## 2. A signup form for your website"');
  const section = readme.slice(start, readme.indexOf("\n## 3.", start));
  const block = section.match(/```html\n([\s\S]*?)\n```/);
  if (!block) fail("README §2 has no ```html block with the signup form");
  const english = block[1];
  const action = 'action="http://127.0.0.1:8080/api/v1/subscribe"';
  if (!english.includes(action)) fail(`the README form has no ${action}`);
  // Only the host and port change: the form posts to the Enlace under test.
  const form = english.replace(action, `action="${ENLACE_URL}/api/v1/subscribe"`);

  // The consent sentences the README shows must be the ones Enlace records as evidence.
  const enSentence = form.match(/<p>(By signing up[\s\S]*?)<\/p>/);
  if (!enSentence) fail("the README form has no consent sentence starting with “By signing up”");
  const esSentence = section.match(/Spanish consent sentence: \*"([\s\S]*?)"\*/);
  if (!esSentence) fail("README §2 has no Spanish consent sentence (*\"…\"*)");
  for (const [lang, sentence] of [["en", enSentence[1]], ["es", esSentence[1]]]) {
    const expected = fill(locales[lang].consent.signup, { org: ORG });
    if (squash(sentence) !== squash(expected)) {
      fail(`README's ${lang} consent sentence differs from consent.signup in locales/${lang}.toml:\n` +
        `  README:  ${squash(sentence)}\n  locales: ${squash(expected)}`);
    }
  }

  // The Spanish version, made as the README tells: translated labels, Spanish preselected, the
  // Spanish consent sentence.
  const labels = [
    ["Email address (required)", "Correo electrónico (obligatorio)"],
    [">Name<", ">Nombre<"],
    ["What would you like to hear about?", "¿Sobre qué temas quieres recibir noticias?"],
    ["News and updates", "Noticias y novedades"],
    ["Events and actions", "Eventos y acciones"],
    ["Leave this field empty", "Deja este campo vacío"],
    [">Sign up<", ">Inscribirme<"],
  ];
  let spanish = form
    .replace('<option value="en" selected>', '<option value="en">')
    .replace('<option value="es">', '<option value="es" selected>')
    .replace(enSentence[1], esSentence[1]);
  for (const [en, es] of labels) spanish = spanish.replace(en, es);
  if (!spanish.includes('<option value="es" selected>')) fail("the README form has no Spanish <option>");
  // Without the language choice, Enlace follows the browser's Accept-Language.
  const chooser = /\s*<p>\s*<label for="enlace-language">[\s\S]*?<\/select>\s*<\/p>/;
  if (!chooser.test(spanish)) fail("the README form has no <p> with the language <select>");
  return { en: form, es: spanish, auto: spanish.replace(chooser, "") };
}

function websitePage(lang, form) {
  const title = lang === "en" ? "Sign up" : "Inscríbete";
  return `<!DOCTYPE html>
<html lang="${lang === "en" ? "en" : "es"}"><head><meta charset="utf-8"><title>${title} · ${ORG}</title>
<style>body{font-family:sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}</style></head>
<body><h1>${ORG}</h1>
${form}
</body></html>`;
}

function serveWebsite(forms) {
  const server = createServer((req, res) => {
    const lang = { "/en.html": "en", "/es.html": "es", "/auto.html": "auto" }[req.url];
    if (!lang) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(websitePage(lang, forms[lang]));
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(PAGE_PORT, "127.0.0.1", () => resolve(server));
  });
}

// ------------------------------------------------------------------- mail
function mailsTo(address) {
  return readdirSync(MAIL_DIR)
    .filter((f) => /^\d+\.json$/.test(f))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(MAIL_DIR, f), "utf8")))
    .filter((m) => m.to.includes(address));
}

async function waitForMail(address, subject, seconds = 30) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    const mail = mailsTo(address).find((m) => m.subject === subject);
    if (mail) return mail;
    if (Date.now() > until) {
      const got = mailsTo(address).map((m) => `“${m.subject}”`).join(", ") || "nothing";
      throw new Error(`no mail “${subject}” for the ${address.split("@")[0]} address within ${seconds} s (got ${got})`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// Every link in a message must point at the public URL Enlace was given.
function links(mail) {
  const found = [...`${mail.text}\n${mail.html}`.matchAll(/https?:\/\/[^\s"'<>)]+/g)].map((m) => m[0]);
  const foreign = found.filter((u) => !u.startsWith(`${ENLACE_URL}/`) && !/^https?:\/\/(www\.)?w3\.org\//.test(u));
  if (foreign.length) throw new Error(`mail “${mail.subject}” links outside ${ENLACE_URL}: ${foreign.join(" ")}`);
  return found;
}

function link(mail, kind) {
  const url = links(mail).find((u) => u.startsWith(`${ENLACE_URL}/${kind}/`));
  if (!url) throw new Error(`mail “${mail.subject}” has no ${kind} link`);
  return url.replace(/[.,;]+$/, "");
}

// --------------------------------------------------------------- staff API
// Signs in once: an access token lasts 15 minutes, far longer than the walk.
let staffToken = null;
async function staffSubscriber(address) {
  if (!staffToken) {
    const auth = await fetch(`${ENLACE_URL}/api/v1/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: STAFF_EMAIL, password: STAFF_PASSWORD }),
    });
    if (auth.status !== 200) throw new Error(`staff sign-in answered ${auth.status}`);
    staffToken = (await auth.json()).access_token;
  }
  const token = staffToken;
  const res = await fetch(`${ENLACE_URL}/api/v1/subscribers?email_contains=${encodeURIComponent(address)}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 200) throw new Error(`GET /api/v1/subscribers answered ${res.status}`);
  const found = (await res.json()).data.filter((s) => s.email === address);
  if (found.length !== 1) throw new Error(`the staff API lists ${found.length} subscribers for the address`);
  return found[0];
}

// ------------------------------------------------------------- the walk
const INTEREST_NAMES = {
  news: { en: "News and updates", es: "Noticias y novedades" },
  events: { en: "Events and actions", es: "Eventos y acciones" },
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function expectHeading(page, lang, expected, what) {
  const h1 = squash(await page.locator("h1").first().innerText());
  const htmlLang = await page.locator("html").getAttribute("lang");
  check(h1 === squash(expected), `${what}: heading “${h1}”, expected “${squash(expected)}”`);
  check(htmlLang === lang, `${what}: <html lang="${htmlLang}">, expected "${lang}"`);
  await expectStyled(page, what);
}

async function expectStyled(page, what) {
  // The pages carry their own inline stylesheet; a strict CSP must not block it.
  const look = await page.evaluate(() => ({
    bg: getComputedStyle(document.body).backgroundColor,
    gap: document.querySelector(".card").getBoundingClientRect().top -
      document.querySelector("header").getBoundingClientRect().bottom,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  }));
  check(look.bg !== "rgba(0, 0, 0, 0)" && look.bg !== "rgb(255, 255, 255)", `${what}: the page is unstyled (body background ${look.bg})`);
  check(look.gap >= 12, `${what}: the card sits ${look.gap}px below the header, expected a margin`);
  check(look.overflow <= 0, `${what}: the page is ${look.overflow}px wider than the window`);
}

// Shows a message's HTML part in the tab, as a mail app would; its language must be the person's.
async function openMail(page, lang, mail) {
  check(mail.html, `mail “${mail.subject}” has no HTML part`);
  await page.setContent(mail.html);
  const htmlLang = await page.locator("html").getAttribute("lang");
  check(htmlLang === lang, `mail “${mail.subject}”: <html lang="${htmlLang}">, expected "${lang}"`);
}

// Clicks a link in the open message; it must lead to the same address as the plain-text part.
async function followMailLink(page, name, url) {
  const target = page.getByRole("link", { name, exact: true }).first();
  const href = await target.getAttribute("href");
  check(href === url, `the HTML mail's “${name}” link differs from the plain-text link`);
  await Promise.all([page.waitForURL(url), target.click()]);
}

async function preferencesState(page) {
  return page.evaluate(() => ({
    name: document.querySelector("#name")?.value ?? null,
    language: document.querySelector('input[name="language"]:checked')?.value ?? null,
    interests: [...document.querySelectorAll('input[name="interests"]:checked')].map((i) => i.value).sort(),
  }));
}

async function walk(browser, lang, plan) {
  const t = locales[lang];
  const context = await browser.newContext({
    locale: lang === "es" ? "es-MX" : "en-US",
    // Spanish on a phone-sized window in dark mode, English on a laptop-sized one in light mode.
    viewport: lang === "es" ? { width: 390, height: 844 } : { width: 900, height: 1000 },
    colorScheme: lang === "es" ? "dark" : "light",
  });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems = [];
  // Failed loads are reported by URL below; a missing favicon is no fault of a page.
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) problems.push(msg.text());
  });
  page.on("response", (res) => {
    const url = new URL(res.url());
    if (res.status() >= 400 && url.pathname !== "/favicon.ico") {
      problems.push(`${res.status()} for ${url.origin}${url.pathname.replace(/\/(confirm|preferences|unsubscribe)\/.*/, "/$1/…")}`);
    }
  });
  page.on("pageerror", (err) => problems.push(err.message));
  let step = "start";
  const shot = async (name) => page.screenshot({ path: join(SHOT_DIR, `${lang}-${name}.png`), fullPage: true });
  const address = `browser-${lang}-${Date.now()}@example.org`;
  try {
    // 1. The website's form.
    step = "1-form";
    await page.goto(`http://127.0.0.1:${PAGE_PORT}/${lang}.html`);
    await page.getByLabel(lang === "es" ? "Correo electrónico (obligatorio)" : "Email address (required)").fill(address);
    await page.getByLabel(lang === "es" ? "Nombre" : "Name", { exact: true }).fill(plan.name);
    check((await page.locator("#enlace-language").inputValue()) === lang, `the form does not preselect “${lang}”`);
    // People never see the honeypot: the README's style puts it off the screen.
    const trap = await page.locator("#enlace-website").boundingBox();
    check(trap && trap.x + trap.width <= 0, `the honeypot field is on the screen at x=${trap?.x}`);
    for (const slug of plan.signupInterests) {
      await page.getByLabel(INTEREST_NAMES[slug][lang]).check();
    }
    await shot("1-form");
    await Promise.all([
      page.waitForURL(`${ENLACE_URL}/api/v1/subscribe`),
      page.getByRole("button", { name: lang === "es" ? "Inscribirme" : "Sign up" }).click(),
    ]);
    step = "2-thanks";
    await expectHeading(page, lang, t.pages.thanks.heading, "thank-you page");
    await shot("2-thanks");

    // 2. The confirmation mail, opened as HTML; its button leads to the confirmation page.
    step = "3-confirmation-mail";
    const confirmation = await waitForMail(address, fill(t.mail.confirmation.subject, { org: ORG }));
    // A stranger may have typed the name: the confirmation greets without it.
    check(confirmation.text.startsWith(t.mail.confirmation.greeting_no_name) && !confirmation.text.includes(plan.name),
      `confirmation mail starts “${confirmation.text.slice(0, 60)}”, expected “${t.mail.confirmation.greeting_no_name}” and no name`);
    const confirmUrl = link(confirmation, "confirm");
    await openMail(page, lang, confirmation);
    await shot("3-confirmation-mail");
    await followMailLink(page, t.mail.confirmation.button, confirmUrl);
    step = "4-confirm";
    await expectHeading(page, lang, t.pages.confirm.heading, "confirmation page");
    const listed = squash(await page.locator(".card ul").innerText());
    for (const slug of plan.signupInterests) {
      check(listed.includes(INTEREST_NAMES[slug][lang]), `confirmation page does not list “${INTEREST_NAMES[slug][lang]}”`);
    }
    await shot("4-confirm");
    step = "5-confirmed";
    await page.getByRole("button", { name: fill(t.pages.confirm.button, { org: ORG }) }).click();
    await expectHeading(page, lang, t.pages.confirmed.heading, "confirmed page");
    const pagePreferences = await page.getByRole("link", { name: t.pages.confirmed.preferences_link }).getAttribute("href");
    check(pagePreferences.startsWith(`${ENLACE_URL}/preferences/`), `confirmed page links to ${pagePreferences}`);
    await shot("5-confirmed");

    // 3. The welcome mail; its footer link leads to the preferences page.
    step = "6-welcome-mail";
    const welcome = await waitForMail(address, fill(t.mail.welcome.subject, { org: ORG }));
    check(/^list-unsubscribe:\s*<http/i.test(welcome.headers["list-unsubscribe"] ?? ""),
      "the welcome mail has no List-Unsubscribe header with a link");
    check(/^list-unsubscribe-post:\s*List-Unsubscribe=One-Click/i.test(welcome.headers["list-unsubscribe-post"] ?? ""),
      "the welcome mail has no List-Unsubscribe-Post: List-Unsubscribe=One-Click header");
    check(welcome.text.startsWith(fill(t.mail.welcome.greeting, { name: plan.name })),
      `welcome mail starts “${welcome.text.slice(0, 60)}”, expected “${fill(t.mail.welcome.greeting, { name: plan.name })}”`);
    const preferencesUrl = link(welcome, "preferences");
    const unsubscribeUrl = link(welcome, "unsubscribe");
    await openMail(page, lang, welcome);
    await shot("6-welcome-mail");
    await followMailLink(page, t.mail.footer.preferences, preferencesUrl);
    step = "7-preferences";
    await expectHeading(page, lang, t.pages.preferences.heading, "preferences page");
    const before = await preferencesState(page);
    check(before.name === plan.name && before.language === lang &&
      before.interests.join() === [...plan.signupInterests].sort().join(),
      `preferences page shows ${JSON.stringify(before)}`);
    let current = lang;
    for (const [i, change] of plan.changes.entries()) {
      const tc = locales[change.language];
      await page.locator("#name").fill(change.name);
      await page.locator(`input[name="language"][value="${change.language}"]`).check();
      for (const slug of Object.keys(INTEREST_NAMES)) {
        await page.locator(`input[name="interests"][value="${slug}"]`).setChecked(change.interests.includes(slug));
      }
      await page.getByRole("button", { name: locales[current].pages.preferences.save_button }).click();
      await page.getByRole("status").waitFor();
      check(squash(await page.getByRole("status").innerText()) === tc.pages.preferences.saved,
        `after saving, the notice reads “${squash(await page.getByRole("status").innerText())}”`);
      await expectHeading(page, change.language, tc.pages.preferences.heading, "preferences page after saving");
      await shot(`7${"abc"[i]}-preferences-saved-${change.language}`);
      // It stuck: a fresh load of the link shows the new choices, in the new language.
      await page.goto(preferencesUrl);
      await expectHeading(page, change.language, tc.pages.preferences.heading, "preferences page, opened again");
      const after = await preferencesState(page);
      const want = { name: change.name, language: change.language, interests: [...change.interests].sort() };
      check(JSON.stringify(after) === JSON.stringify(want),
        `preferences after saving: ${JSON.stringify(after)}, expected ${JSON.stringify(want)}`);
      current = change.language;
    }
    const last = plan.changes.at(-1);
    const mid = await staffSubscriber(address);
    check(mid.status === "confirmed" && mid.language === last.language && mid.name === last.name &&
      [...mid.interests].sort().join() === [...last.interests].sort().join(),
      `staff API after preferences: ${JSON.stringify({ status: mid.status, language: mid.language, interests: mid.interests })}`);

    // 4. Unsubscribe, from the link at the foot of the welcome mail. The page speaks the language
    //    chosen last on the preferences page.
    step = "8-unsubscribe";
    const tl = locales[last.language];
    await openMail(page, lang, welcome);
    await followMailLink(page, fill(t.mail.footer.unsubscribe, { org: ORG }), unsubscribeUrl);
    await expectHeading(page, last.language, fill(tl.pages.unsubscribe.heading, { org: ORG }), "unsubscribe page");
    await shot("8-unsubscribe");
    step = "9-unsubscribed";
    await page.getByRole("button", { name: tl.pages.unsubscribe.button }).click();
    await expectHeading(page, last.language, tl.pages.unsubscribed.heading, "unsubscribed page");
    check((await page.locator(".card").innerText()).includes(fill(tl.pages.unsubscribed.body, { org: ORG })),
      "the unsubscribed page does not say that no more mail will come");
    await shot("9-unsubscribed");

    // 5. The staff API agrees.
    step = "10-staff-api";
    const final = await staffSubscriber(address);
    check(final.status === "unsubscribed", `staff API says status “${final.status}”, expected “unsubscribed”`);
    check(problems.length === 0, `the browser reported errors: ${problems.join(" | ")}`);
    console.log(`ok   ${lang}: form → thanks → confirmation mail → confirm → welcome mail → preferences saved ${plan.changes.length}× → unsubscribe → staff API: unsubscribed`);
  } catch (err) {
    await shot(`FAILED-${step}`).catch(() => {});
    throw new Error(`${lang}, step ${step}: ${err.message.split("\n")[0]} (screenshot ${lang}-FAILED-${step}.png; page ${page.url().replace(/\/(confirm|preferences|unsubscribe)\/.*/, "/$1/…")})`);
  } finally {
    await context.close();
  }
}

// The form without its language choice, from a browser that asks for Spanish: the thank-you page and
// the confirmation mail must be in Spanish.
async function walkAcceptLanguage(browser) {
  const t = locales.es;
  const context = await browser.newContext({ locale: "es-MX", viewport: { width: 900, height: 1000 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const address = `browser-auto-${Date.now()}@example.org`;
  let step = "1-form";
  try {
    await page.goto(`http://127.0.0.1:${PAGE_PORT}/auto.html`);
    check((await page.locator("#enlace-language").count()) === 0, "the page still has a language choice");
    await page.getByLabel("Correo electrónico (obligatorio)").fill(address);
    await page.getByLabel("Noticias y novedades").check();
    await Promise.all([
      page.waitForURL(`${ENLACE_URL}/api/v1/subscribe`),
      page.getByRole("button", { name: "Inscribirme" }).click(),
    ]);
    step = "2-thanks";
    await expectHeading(page, "es", t.pages.thanks.heading, "thank-you page (Accept-Language: es-MX)");
    await page.screenshot({ path: join(SHOT_DIR, "accept-language-es-2-thanks.png"), fullPage: true });
    step = "3-mail";
    await waitForMail(address, fill(t.mail.confirmation.subject, { org: ORG }));
    const person = await staffSubscriber(address);
    check(person.language === "es" && person.status === "pending",
      `staff API: language “${person.language}”, status “${person.status}”; expected “es”, “pending”`);
    console.log("ok   form without a language, Accept-Language es-MX → Spanish thank-you page and mail, stored as es");
  } catch (err) {
    await page.screenshot({ path: join(SHOT_DIR, `accept-language-FAILED-${step}.png`), fullPage: true }).catch(() => {});
    throw new Error(`Accept-Language, step ${step}: ${err.message.split("\n")[0]} (screenshot accept-language-FAILED-${step}.png)`);
  } finally {
    await context.close();
  }
}

// A mistyped address from a browser that does not check it (the form with novalidate): the 422 page
// lists what to fix, in the form's language.
async function walkFormErrors(browser) {
  const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  let lang = "en";
  try {
    for (lang of ["en", "es"]) {
      const t = locales[lang];
      await page.goto(`http://127.0.0.1:${PAGE_PORT}/${lang}.html`);
      await page.locator("form").evaluate((form) => { form.noValidate = true; });
      await page.locator("#enlace-email").fill("not-an-address");
      const [response] = await Promise.all([
        page.waitForResponse(`${ENLACE_URL}/api/v1/subscribe`),
        page.locator('button[type="submit"]').click(),
      ]);
      check(response.status() === 422, `a mistyped address got ${response.status()}, expected 422`);
      await page.waitForURL(`${ENLACE_URL}/api/v1/subscribe`);
      await expectHeading(page, lang, t.pages.form_errors.heading, "form errors page");
      const alert = squash(await page.getByRole("alert").innerText());
      check(alert.includes(`${t.fields.email}: ${t.hints.email}`),
        `the form errors page reads “${alert}”, expected “${t.fields.email}: ${t.hints.email}”`);
      await page.screenshot({ path: join(SHOT_DIR, `${lang}-form-errors.png`), fullPage: true });
    }
    console.log("ok   a mistyped address → 422 page listing the e-mail field, in English and in Spanish");
  } catch (err) {
    await page.screenshot({ path: join(SHOT_DIR, `${lang}-FAILED-form-errors.png`), fullPage: true }).catch(() => {});
    throw new Error(`${lang}, form errors: ${err.message.split("\n")[0]} (screenshot ${lang}-FAILED-form-errors.png)`);
  } finally {
    await context.close();
  }
}

const PLANS = {
  en: {
    name: "Robin Walker",
    signupInterests: ["news"],
    changes: [{ name: "Robin W.", language: "en", interests: ["events"] }],
  },
  es: {
    name: "María José Núñez",
    signupInterests: ["news", "events"],
    // Switches to English and back, so both saves are checked for the language they set.
    changes: [
      { name: "María José", language: "en", interests: ["news"] },
      { name: "María José Núñez", language: "es", interests: ["events"] },
    ],
  },
};

mkdirSync(SHOT_DIR, { recursive: true });
const started = Date.now();
const website = await serveWebsite(readmeForms());
// Playwright starts Chromium with a fresh, empty profile folder of its own (--user-data-dir).
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const walks = [
  () => walk(browser, "en", PLANS.en),
  () => walk(browser, "es", PLANS.es),
  () => walkAcceptLanguage(browser),
  () => walkFormErrors(browser),
];
let failed = 0;
for (const run of walks) {
  try {
    await run();
  } catch (err) {
    failed += 1;
    console.error(`FAIL ${err.message}`);
  }
}
await browser.close();
website.close();
clearTimeout(deadline);
const shots = readdirSync(SHOT_DIR).filter((f) => f.endsWith(".png")).length;
console.log(`${shots} screenshots in ${SHOT_DIR}; the walk took ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`browser: ${walks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
