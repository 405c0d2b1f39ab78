// What the console's browser checks share: the settings, a tab that collects its own errors,
// signing in, choosing the language, the console's wording, and moving by keyboard alone.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}
export const env = (name) => {
  const value = process.env[name];
  if (!value) fail(`setting ${name} is missing`);
  return value;
};
export const ENLACE_URL = env("ENLACE_URL").replace(/\/$/, "");
export const CONSOLE = (process.env.CONSOLE_PATH ?? "/admin").replace(/\/$/, "");
export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 800 };
export const squash = (text) => String(text ?? "").replace(/\s+/g, " ").trim();
export const at = (path) => `${ENLACE_URL}${CONSOLE}${path}`;

// The console's wording, as the templates see it (t.console.…): the frame's strings at the top,
// each area's under its name.
const LOCALES = join(dirname(fileURLToPath(import.meta.url)), "..", "locales", "console");
export const T = Object.fromEntries(["en", "es"].map((lang) => {
  const top = parseToml(readFileSync(join(LOCALES, `frame.${lang}.toml`), "utf8"));
  for (const area of ["people", "catalog", "imports", "exports", "admin", "newsletters"]) {
    top[area] = parseToml(readFileSync(join(LOCALES, `${area}.${lang}.toml`), "utf8"));
  }
  return [lang, top];
}));
// "{count} people"|fill(count=3), as the templates fill placeholders.
export const fill = (text, values) => Object.entries(values).reduce((s, [k, v]) => s.replaceAll(`{${k}}`, String(v)), text);
// A message of the service layer in the console's words (an area's [messages], else as it is).
export function message(lang, text) {
  const t = T[lang];
  for (const table of [t, ...Object.values(t).filter((v) => v && typeof v === "object")]) {
    if (table.messages && typeof table.messages[text] === "string") return table.messages[text];
  }
  return text;
}

// ---------------------------------------------------------------- the JSON API (setting up only)
export async function api(token, method, path, body) {
  const res = await fetch(`${ENLACE_URL}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get("content-type") ?? "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (res.status >= 400) throw new Error(`${method} /api/v1${path}: ${res.status} ${JSON.stringify(data).slice(0, 200)}`);
  return data;
}

export async function staffToken(email, password) {
  const res = await fetch(`${ENLACE_URL}/api/v1/auth/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!res.ok) throw new Error(`staff sign-in to the API: ${res.status}`);
  return (await res.json()).access_token;
}

// ---------------------------------------------------------------- tabs
// Console errors, uncaught exceptions and HTTP errors of one tab, collected as they come.
export function watch(page) {
  const seen = [];
  page.on("console", (msg) => {
    // A missing favicon is no fault of a page.
    if (msg.type() === "error" && !(msg.location()?.url ?? "").endsWith("/favicon.ico")) seen.push(`console error: ${squash(msg.text()).slice(0, 300)}`);
  });
  page.on("pageerror", (err) => seen.push(`script error: ${squash(err.message).slice(0, 300)}`));
  page.on("response", (res) => {
    const url = new URL(res.url());
    if (res.status() >= 400 && url.pathname !== "/favicon.ico" && !page.expectError) {
      seen.push(`${res.status()} for ${url.pathname}${url.search}`);
    }
  });
  return seen;
}

export async function newTab(browser, lang, viewport = DESKTOP, colorScheme = "light") {
  const context = await browser.newContext({ viewport, colorScheme, locale: lang === "es" ? "es-MX" : "en-US" });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  page.seen = watch(page);
  return page;
}

export const label = (url) => {
  const u = new URL(url);
  return `${u.pathname.slice(CONSOLE.length) || "/"}${u.search}`;
};

// --------------------------------------------------------------- signing in
export async function signIn(page, email, password, lang) {
  await page.goto(`${ENLACE_URL}${CONSOLE}/sign-in?lang=${lang}`);
  await page.locator("#f-email").fill(email);
  await page.locator("#f-password").fill(password);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/sign-in")), page.locator('form[action$="/sign-in"] button[type="submit"]').click()]);
}

// The language, chosen as a member does: on the account page's preferences form.
export async function chooseLanguage(page, lang) {
  await page.goto(`${ENLACE_URL}${CONSOLE}/account`);
  await page.locator("#f-language").selectOption(lang);
  await Promise.all([
    page.waitForURL((u) => u.search.includes("notice=preferences_saved")),
    page.locator('form[action$="/account/preferences"] button[type="submit"]').click(),
  ]);
  await page.waitForLoadState();
  const got = await page.evaluate(() => document.documentElement.lang);
  if (got !== lang) throw new Error(`after choosing “${lang}” on the account page the console is in “${got}”`);
  page.seen.splice(0);
}

// ------------------------------------------------------------ keyboard alone
// What has the focus: its role-ish kind, its accessible name (label, text, aria-label), whether
// the focus is visible (an outline or a box-shadow), and its id.
export async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { kind: "body", name: "", id: "", visible: false };
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    const shadow = style.boxShadow && style.boxShadow !== "none";
    const labels = el.labels ? [...el.labels].map((l) => l.innerText).join(" ") : "";
    const name = (el.getAttribute("aria-label") || labels || el.innerText || el.value || "").replace(/\s+/g, " ").trim();
    const kind = el.tagName.toLowerCase() === "input" ? `input[${el.type}]` : el.tagName.toLowerCase();
    return { kind, name, id: el.id, visible: outline || shadow };
  });
}

// Presses Tab (or Shift+Tab) until the focus is on a control whose name contains `name` (a string or
// a RegExp, matched against the name or the id); every control passed on the way must show its focus.
export async function tabTo(page, name, { back = false, max = 40 } = {}) {
  const matches = (f) => (name instanceof RegExp ? name.test(f.name) || name.test(f.id) : f.name.includes(name) || f.id === name);
  const passed = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    const f = await focused(page);
    passed.push(`${f.kind} “${f.name.slice(0, 40)}”`);
    if (f.kind !== "body" && !f.visible) {
      throw new Error(`the focus on ${f.kind} “${f.name.slice(0, 60)}” (${label(page.url())}) is not visible`);
    }
    if (matches(f)) return f;
  }
  throw new Error(`${max} presses of ${back ? "Shift+Tab" : "Tab"} on ${label(page.url())} never reached “${name}”; passed ${passed.slice(0, 12).join(", ")}`);
}

// Presses Tab once per expected control: each must get the focus in this order, visibly. The
// expected controls are ids or RegExps matched against the name.
export async function tabThrough(page, expected) {
  for (const want of expected) {
    await page.keyboard.press("Tab");
    const f = await focused(page);
    const ok = want instanceof RegExp ? want.test(f.name) || want.test(f.id) : f.id === want;
    if (!ok) throw new Error(`on ${label(page.url())} Tab reached ${f.kind} “${f.name.slice(0, 40)}”${f.id ? ` (#${f.id})` : ""}, expected ${want}`);
    if (!f.visible) throw new Error(`the focus on ${f.kind} “${f.name.slice(0, 60)}” (${label(page.url())}) is not visible`);
  }
}

// Follows a navigation entry by keyboard from the top of a freshly loaded page; the page it opens
// must mark that entry as the current one. For the walks of the console's areas.
export async function navTo(page, name) {
  const f = await tabTo(page, name);
  const inNav = await page.evaluate(() => Boolean(document.activeElement?.closest("nav")));
  if (!inNav) throw new Error(`“${f.name}” is not in the navigation`);
  await pressAndLoad(page, "Enter", () => true);
  const current = await page.evaluate(() => document.querySelector('nav [aria-current="page"]')?.innerText.trim());
  if (current !== name) throw new Error(`after following “${name}” the navigation marks “${current}” as current`);
}

// Presses a key that leads to another page and waits for it.
export async function pressAndLoad(page, key, urlTest) {
  await Promise.all([page.waitForEvent("framenavigated", (frame) => frame === page.mainFrame()), page.keyboard.press(key)]);
  await page.waitForLoadState();
  if (!urlTest(new URL(page.url()))) throw new Error(`${key} led to ${label(page.url())}`);
}

export async function typeInto(page, name, text) {
  await tabTo(page, name);
  await page.keyboard.type(text);
}

