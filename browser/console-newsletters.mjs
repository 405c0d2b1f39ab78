// The staff console's newsletters, driven in headless Chromium as staff members use them, in English
// and in Spanish side by side (each language as its own admin, with its own time zone), every
// wording read from locales/console/newsletters.*.toml. Each step that fails names itself.
//
//   draft      the list → a new draft: English and Spanish subject, HTML and text side by side, a
//              From address, the audience “everyone”; saved, it is under Drafts in the list
//   autosave   typing in the editor: the status says it saved, at the time in the member's zone; a
//              reload keeps the text. A colleague saves the same draft in a second tab: typing in
//              the first, the autosave reports the conflict and stops; saving the first by hand gets
//              the conflict page (409) with what was typed there, and the draft holds the colleague's
//              save (read through the JSON API)
//   preview    sample data and a person chosen by address, in each language: the phone and desktop
//              frames (sandboxed) show that version's body greeting them by name, and the text part
//   test       a test copy to an address in the other language reaches the SMTP sink in that language
//   send       the audience set to a segment; the confirmation step shows the people per language,
//              the total and the From address; sent now, the page follows the progress to sent by
//              itself (no reload); every recipient's mail reaches the SMTP sink, in their language
//   schedule   a second draft scheduled at a date and time in the member's time zone: its page and
//              its row under Scheduled in the list show that time; cancelled, it is under Cancelled
//   duplicate  a sent newsletter duplicated: its editor opens with the same content; sent, then paused
//              at once (sends go at one message a second per From address, ENLACE_SEND_RATE_PER_SENDER
//              in browser/run.sh, so it can't be over yet), nothing goes out while paused; resumed,
//              it reaches sent
//   viewer     a viewer sees no new, edit, send, test, duplicate, pause or cancel controls on the
//              newsletters' pages (the preview it may see) and gets the forbidden page at the new
//              draft's, the editor's and the send step's addresses
//
// newsletterKeyboardWalk creates a draft and reaches its preview with the keyboard alone.
//
// The people each language's newsletters go to (a few confirmed people per language at a domain of
// their own, so the counts are exact) and a segment of them are set up through the JSON API first.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CONSOLE, ENLACE_URL, T, api, at, fill, navTo, newTab, pressAndLoad, signIn, squash, staffToken, tabTo, typeInto } from "./console-kit.mjs";

// Each language's admin works in a time zone of their own: a scheduled time is shown in it.
const ZONES = { en: "America/Phoenix", es: "America/Mexico_City" };
const OTHER = { en: "es", es: "en" };

// Who gets each language's newsletters: [address, name, language].
const PEOPLE = {
  en: [["tom", "Tom Hill", "en"], ["jo", "Jo Park", "en"], ["sam", "Sam Lee", "en"], ["marta", "Marta Ruiz", "es"], ["ines", "Inés Mora", "es"]],
  es: [["tom", "Tom Hill", "en"], ["jo", "Jo Park", "en"], ["marta", "Marta Ruiz", "es"], ["ines", "Inés Mora", "es"], ["lucia", "Lucía Paz", "es"]],
};
const domain = (lang) => `newsletters-${lang}.example`;
const address = (lang, who) => `${who}@${domain(lang)}`;
const segmentName = (lang) => `Newsletter readers (${lang})`;

// What each language's admin writes.
const DRAFTS = {
  en: {
    subject: "Spring rally on Saturday",
    html: "<p>Hello {{ name }}, the spring rally starts at noon in the park.</p>",
    text: "Hello {{ name }}, the spring rally starts at noon in the park.",
    es_subject: "Marcha de primavera el sábado",
    es_html: "<p>Hola {{ name }}, la marcha de primavera empieza al mediodía en el parque.</p>",
    es_text: "Hola {{ name }}, la marcha de primavera empieza al mediodía en el parque.",
    from: "Rally Team <rally-en@example.org>",
  },
  es: {
    subject: "Town meeting on Thursday",
    html: "<p>Hello {{ name }}, the town meeting is at seven in the library.</p>",
    text: "Hello {{ name }}, the town meeting is at seven in the library.",
    es_subject: "Asamblea vecinal el jueves",
    es_html: "<p>Hola {{ name }}, la asamblea vecinal es a las siete en la biblioteca.</p>",
    es_text: "Hola {{ name }}, la asamblea vecinal es a las siete en la biblioteca.",
    from: "Asamblea <asamblea-es@example.org>",
  },
};
// The greeting each version opens with, as a reader named `name` gets it.
const greeting = (language, name) => `${language === "es" ? "Hola" : "Hello"} ${name},`;

// ------------------------------------------------------------- helpers
class Steps {
  constructor() {
    this.now = "start";
  }
  at(name) {
    this.now = name;
  }
}

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function go(page, locator, want = [200]) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
  const status = response?.status();
  if (!want.includes(status)) throw new Error(`the page answered ${status} (${page.url()}), expected ${want.join(" or ")}`);
  return response;
}

async function open(page, path, want = [200]) {
  const response = await page.goto(at(path));
  const status = response?.status();
  if (!want.includes(status)) throw new Error(`${path} answered ${status}, expected ${want.join(" or ")}`);
  return response;
}

const text = async (locator) => squash(await locator.innerText());
const h1 = (page) => text(page.locator("h1"));
const field = (page, name) => page.locator(`[id="f-${name}"]`);

async function notice(page, expected) {
  const got = await text(page.locator(".notice[role=status]").first()).catch(() => "(no notice)");
  check(got === squash(expected), `the page says “${got}”, expected “${squash(expected)}”`);
}

async function until(probe, seconds, what) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`${typeof what === "function" ? what() : what} did not happen within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// A template's words with its {placeholder} as a pattern: "Saved automatically at {time}.".
const wording = (template) => new RegExp(`^${template.split(/\{\w+\}/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".+")}$`);

// The state shown at the top of a newsletter's page.
const badge = (page) => text(page.locator("main .newsletter-status").first());

// "3 of 5 handled" on a newsletter's page, as numbers (null when there is no progress yet).
async function progress(page, tn) {
  const label = page.locator("#send-progress label[for=send-bar]");
  if ((await label.count()) === 0) return null;
  const said = await text(label);
  const parts = tn.show.progress_label.split(/(\{done\}|\{total\})/);
  const pattern = parts.map((part) => (part === "{done}" || part === "{total}" ? "(\\d+)" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("");
  const got = said.match(new RegExp(`^${pattern}$`));
  check(got, `the progress says “${said}”`);
  const doneFirst = parts.indexOf("{done}") < parts.indexOf("{total}");
  const [a, b] = [Number(got[1]), Number(got[2])];
  return doneFirst ? { done: a, total: b, said } : { done: b, total: a, said };
}



// Every mail the SMTP sink kept.
const mails = (folder) => readdirSync(folder).filter((n) => n.endsWith(".json")).sort()
  .map((n) => JSON.parse(readFileSync(join(folder, n), "utf8")));

// An instant as the console shows it in `zone`: `7 Dec 2026, 04:10`, the month in the page's language.
function shownIn(zone, months, instant) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, year: "numeric", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(instant).map((p) => [p.type, p.value]));
  return `${Number(parts.day)} ${months[Number(parts.month) - 1]} ${parts.year}, ${parts.hour}:${parts.minute}`;
}

// Tomorrow at 09:30 in `zone`: the value typed into a datetime-local field, and the way the console
// shows it (`8 Dec 2026, 09:30`, the month in the page's language).
function tomorrowAt(zone, months) {
  const [y, m, d] = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date()).split("-").map(Number);
  const next = new Date(Date.UTC(y, m - 1, d + 1));
  const [yy, mm, dd] = [next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()];
  return {
    typed: `${yy}-${String(mm).padStart(2, "0")}-${String(dd).padStart(2, "0")}T09:30`,
    shown: `${dd} ${months[mm - 1]} ${yy}, 09:30`,
  };
}

// The language and the time zone, chosen on the account page.
async function preferences(page, lang, zone) {
  await open(page, "/account");
  await page.locator("#f-language").selectOption(lang);
  await page.locator("#f-time_zone").selectOption(zone);
  await Promise.all([
    page.waitForURL((u) => u.search.includes("notice=preferences_saved")),
    page.locator('form[action$="/account/preferences"] button[type="submit"]').click(),
  ]);
  check((await page.locator("html").getAttribute("lang")) === lang, `the account page is not in ${lang} after choosing it`);
}

// Set up once: each language's people (confirmed, with recorded consent) and a segment of them, and
// a draft for the viewer to look at.
async function setUp(token, mailDir) {
  const recorded = { mode: "recorded", source: "browser test set-up", note: "agreed to hear from us" };
  // Enlace keeps SMTP connections open between messages, and the SMTP sink closes one idle for a
  // minute with “421 Timeout”. Enlace then takes that 421 as the server deferring the message and
  // tries it again 30 s later (a newsletter's message a minute later) instead of at once on a new
  // connection. Eight confirmation mails sent at once take every connection left over from the
  // earlier flows out of the pool, so the mails below go over fresh ones.
  const before = mails(mailDir).length;
  await Promise.all(Array.from({ length: 8 }, (_, i) => api(token, "POST", "/subscribers", {
    email: `warm-up-${i}@newsletters.example`, consent: { mode: "confirmation" },
  })));
  await until(() => mails(mailDir).length > before, 10, "a confirmation mail reaching the SMTP sink").catch(() => {});
  await new Promise((r) => setTimeout(r, 1_000));
  const segments = {};
  for (const lang of ["en", "es"]) {
    await Promise.all(PEOPLE[lang].map(([who, name, language]) =>
      api(token, "POST", "/subscribers", { email: address(lang, who), name, language, consent: recorded })));
    segments[lang] = (await api(token, "POST", "/segments", { name: segmentName(lang), filter: { email_domain: domain(lang) } })).id;
  }
  const draft = await api(token, "POST", "/newsletters", {
    subject: "Volunteers wanted",
    html: "<p>Hello {{ name }}, we need hands on Sunday.</p>",
    variants: { es: { subject: "Se buscan voluntarios", html: "<p>Hola {{ name }}, necesitamos manos el domingo.</p>" } },
    segment_id: segments.en,
  });
  return { segments, viewerDraft: draft.id };
}

// ------------------------------------------------------------- 1. a new draft
async function draft(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  s.at("list → new draft");
  await open(page, "/newsletters");
  check((await h1(page)) === tn.title, `the list is headed “${await h1(page)}”`);
  await go(page, page.getByRole("link", { name: tn.new, exact: true }));
  check((await h1(page)) === tn.edit.new_title, `the new draft's page is headed “${await h1(page)}”`);
  // Both languages side by side: each fieldset names its language.
  check((await page.locator('fieldset[lang="en"] legend').innerText()) === tn.edit.english, "no English fieldset");
  check((await page.locator('fieldset[lang="es"] legend').innerText()) === tn.edit.spanish, "no Spanish fieldset");
  await field(page, "subject").fill(d.subject);
  await field(page, "variants.es.subject").fill(d.es_subject);
  await field(page, "html").fill(d.html);
  await field(page, "variants.es.html").fill(d.es_html);
  await field(page, "text").fill(d.text);
  await field(page, "variants.es.text").fill(d.es_text);
  await field(page, "from").fill(d.from);
  await page.locator("#f-audience").selectOption("everyone");
  // A merge field inserted where the cursor is, in the box last used (the Spanish text part),
  // then taken out again.
  const esText = field(page, "variants.es.text");
  await esText.click();
  await esText.press("End");
  await page.locator("details", { has: page.locator("button[data-insert]") }).locator("summary").click();
  await page.locator('button[data-insert="{{ name }}"]').click();
  const inserted = await esText.inputValue();
  check(inserted === `${d.es_text}{{ name }}`, `inserting {{ name }} made the Spanish text “${inserted}”`);
  await esText.fill(d.es_text);
  await ctx.checkPage(page, `newsletters/${lang} new draft`, lang);

  s.at("save the new draft");
  await go(page, page.getByRole("button", { name: tn.edit.create, exact: true }));
  await notice(page, tn.notices.draft_created);
  check((await h1(page)) === d.subject, `the draft's page is headed “${await h1(page)}”`);
  check((await badge(page)) === tn.status.draft, `the draft's state says “${await badge(page)}”`);
  const who = await text(page.locator("#who-heading ~ dl.facts"));
  check(who.includes(tn.show.everyone) && who.includes(d.from), `the draft's audience and From say “${who}”`);
  state.id = new URL(page.url()).pathname.split("/").at(-1);
  state.path = `/newsletters/${state.id}`;
  await ctx.checkPage(page, `newsletters/${lang} draft`, lang);

  s.at("the list shows it under Drafts");
  await open(page, "/newsletters");
  await go(page, page.locator("nav.tabs").getByRole("link", { name: tn.status.draft, exact: true }));
  check(new URL(page.url()).searchParams.get("status") === "draft", `the Drafts tab led to ${page.url()}`);
  check((await page.locator('nav.tabs [aria-current="page"]').innerText()) === tn.status.draft, "the Drafts tab is not marked current");
  const row = page.locator("#newsletter-list tbody tr", { has: page.getByRole("link", { name: d.subject, exact: true }) });
  check((await row.count()) === 1, `the Drafts list does not show “${d.subject}”`);
  const cells = await text(row);
  check(cells.includes(tn.status.draft) && cells.includes(tn.both_languages), `its row says “${cells}”`);
}

// ------------------------------------------------------------- 2. autosave, and a colleague's save
async function autosave(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  const status = page.locator("[data-autosave-status]");
  const saved = wording(tn.edit.autosaved);

  s.at("autosave: type, see it saved");
  await open(page, `${state.path}/edit`);
  check((await h1(page)) === tn.edit.edit_title, `the editor is headed “${await h1(page)}”`);
  const added = lang === "en" ? " Bring water and a hat." : " Trae agua y sombrero.";
  await field(page, "text").fill(d.text + added);
  // Typed at the end of what is there, key by key.
  await field(page, "variants.es.text").focus();
  await page.keyboard.press("Control+End");
  await field(page, "variants.es.text").pressSequentially(lang === "en" ? " Trae agua." : " Trae agua y sombrero.", { delay: 10 });
  await until(async () => saved.test(await text(status)), 20, `the autosave status saying “${tn.edit.autosaved}”`);
  // The time it says is the member's, as every time in the console (the browser's own zone is UTC).
  const said = (await text(status)).match(/(\d{1,2}):(\d{2})/);
  const clock = (at) => new Intl.DateTimeFormat("en-GB", { timeZone: ZONES[lang], hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .format(at).split(":").map(Number);
  const near = [new Date(), new Date(Date.now() - 60_000)].map(clock);
  check(said && near.some(([h, m]) => Number(said[1]) % 12 === h % 12 && Number(said[2]) === m),
    `the autosave says “${await text(status)}”, not the time in ${ZONES[lang]} (${near[0].map((n) => String(n).padStart(2, "0")).join(":")})`);
  state.text = d.text + added;

  s.at("autosave: a reload keeps the text");
  await page.reload();
  check((await field(page, "text").inputValue()) === state.text, `after a reload the text part is “${await field(page, "text").inputValue()}”`);
  const esText = await field(page, "variants.es.text").inputValue();
  check(esText.startsWith(`${d.es_text} Trae agua`), `after a reload the Spanish text part is “${esText}”`);
  state.esText = await field(page, "variants.es.text").inputValue();

  s.at("a colleague saves the same draft in a second tab");
  const other = await newTab(ctx.browser, lang);
  other.expectError = true;
  try {
    await signIn(other, ctx.accounts[lang], ctx.password, lang);
    await open(other, `${state.path}/edit`);
    state.subject = `${d.subject} (${lang === "en" ? "moved to noon" : "cambio de hora"})`;
    await field(other, "subject").fill(state.subject);
    await go(other, other.getByRole("button", { name: tn.edit.save, exact: true }));
    await notice(other, tn.notices.draft_saved);
  } finally {
    await other.context().close();
  }

  s.at("typing in the first tab: the autosave reports the conflict and stops");
  const typedHtml = `${d.html}<p>${lang === "en" ? "Typed after the colleague saved." : "Escrito después del colega."}</p>`;
  const posts = [];
  page.on("request", (req) => {
    if (req.method() === "POST" && req.url().endsWith(`${state.path}/autosave`)) posts.push(req.url());
  });
  await field(page, "html").fill(typedHtml);
  await until(async () => (await text(status)) === squash(tn.edit.autosave_conflict), 20, `the autosave status saying “${tn.edit.autosave_conflict}”`);
  const before = posts.length;
  await page.keyboard.press("Control+End");
  await page.keyboard.type(" ");
  await page.waitForTimeout(6_500);
  check(posts.length === before, `the autosave went on posting after the conflict (${posts.length - before} more)`);
  check((await text(status)) === squash(tn.edit.autosave_conflict), "the conflict words went away");

  s.at("saving the first tab by hand gets the conflict page");
  await go(page, page.getByRole("button", { name: tn.edit.save, exact: true }), [409]);
  const alert = await text(page.locator('.notice[role="alert"]').first());
  check(wording(tn.edit.conflict).test(alert.replace(` ${squash(tn.edit.open_again)}`, "")), `the conflict page says “${alert}”`);
  check((await field(page, "html").inputValue()) === `${typedHtml} `, "the conflict page lost what was typed in this tab");
  check((await page.locator("form[data-autosave]").count()) === 0, "the conflict page's form still autosaves");
  await ctx.checkPage(page, `newsletters/${lang} editor conflict (409)`, lang);

  s.at("the draft holds the colleague's save");
  const held = await api(ctx.token, "GET", `/newsletters/${state.id}`);
  check(held.subject === state.subject, `the draft's subject is “${held.subject}”, expected the colleague's “${state.subject}”`);
  check(held.html === d.html, `the draft's HTML is “${held.html}”: the conflicting tab's text was saved`);
  check(held.text === state.text, "the draft lost the autosaved text part");
  // The conflict page says when the colleague saved, in the member's time zone.
  const savedAt = shownIn(ZONES[lang], T[lang].months, new Date(held.updated_at));
  check(alert.includes(fill(tn.edit.conflict, { when: savedAt }).split(".")[0]), `the conflict page says “${alert}”, not that the colleague saved at ${savedAt}`);
  await go(page, page.getByRole("link", { name: tn.edit.open_again, exact: true }));
  check((await field(page, "subject").inputValue()) === state.subject, "the saved draft, opened again, does not show the colleague's subject");
}

// ------------------------------------------------------------- 3. preview
async function preview(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  const subjects = { en: state.subject, es: d.es_subject };
  const show = async (language, person, expectName, expectLanguage) => {
    await page.locator("#f-language").selectOption(language);
    await page.locator("#f-email").fill(person);
    await go(page, page.getByRole("button", { name: tn.preview.show, exact: true }));
    const facts = await text(page.locator("main dl.facts").first());
    check(facts.includes(subjects[expectLanguage]), `the preview's subject is not “${subjects[expectLanguage]}” (${facts})`);
    check(facts.includes(tn.language_names[expectLanguage]), `the preview is not of the ${expectLanguage} version (${facts})`);
    check(facts.includes(d.from), `the preview's From is not “${d.from}” (${facts})`);
    for (const kind of ["phone", "desktop"]) {
      const frame = page.locator(`iframe.preview.${kind}`);
      check((await frame.count()) === 1, `no ${kind} frame`);
      check((await frame.getAttribute("sandbox")) === "", `the ${kind} frame is not fully sandboxed`);
      check((await frame.getAttribute("title")).includes(subjects[expectLanguage]), `the ${kind} frame's title does not name the subject`);
      const body = await until(async () => {
        const said = squash(await page.frameLocator(`iframe.preview.${kind}`).locator("body").innerText().catch(() => ""));
        return said.includes(greeting(expectLanguage, expectName)) ? said : null;
      }, 10, `the ${kind} frame showing “${greeting(expectLanguage, expectName)}”`);
      check(body.length > 0, `the ${kind} frame is empty`);
    }
    const plain = await text(page.locator("#text-heading ~ pre"));
    check(plain.includes(greeting(expectLanguage, expectName)), `the text part says “${plain.slice(0, 120)}”`);
  };

  s.at("preview: from the newsletter's page");
  await open(page, state.path);
  await go(page, page.getByRole("link", { name: tn.show.see_preview, exact: true }));
  check((await h1(page)) === tn.preview.title, `the preview is headed “${await h1(page)}”`);
  for (const language of ["en", "es"]) {
    s.at(`preview: sample data, ${language}`);
    await show(language, "", "Ana", language);
  }
  await ctx.checkPage(page, `newsletters/${lang} preview`, lang);
  s.at("preview: a person chosen by address, English");
  await show("en", address(lang, "tom"), "Tom Hill", "en");
  s.at("preview: a person chosen by address, in their own language (Spanish)");
  await show("", address(lang, "marta"), "Marta Ruiz", "es");
}

// ------------------------------------------------------------- 4. a test send
async function testSend(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  const language = OTHER[lang];
  const to = `proof-${lang}@${domain(lang)}`;
  s.at("test send: to an address, in the other language");
  await open(page, state.path);
  await page.locator("#f-to").fill(to);
  await page.locator("#f-test-language").selectOption(language);
  await go(page, page.getByRole("button", { name: tn.test.send, exact: true }));
  await notice(page, tn.notices.test_sent);
  s.at("test send: the mail reaches the SMTP sink");
  // Up to 45 s: a mail tried over a connection the sink had closed goes again 30 s later.
  const mail = await until(() => mails(ctx.mailDir).find((m) => m.to.includes(to)), 45, `a test mail to ${to}`);
  const subject = language === "es" ? d.es_subject : state.subject;
  check(mail.subject.includes(subject), `the test mail's subject is “${mail.subject}”, expected the ${language} “${subject}”`);
  const body = (language === "es" ? d.es_text : d.text).split("}}, ")[1];
  check(squash(mail.text).includes(body), `the test mail's text does not hold the ${language} version's “${body}”`);
}

// ------------------------------------------------------------- 5. send
// Follows a newsletter's page as it refreshes itself (no reload) until every message is handled
// and the page says it was sent; returns the progress labels seen on the way.
async function followToSent(page, tn, total) {
  await page.evaluate(() => { window.stillThisPage = true; });
  const seen = [];
  let state = "";
  await until(async () => {
    const p = await progress(page, tn);
    if (p && seen.at(-1) !== p.said) seen.push(p.said);
    state = await badge(page);
    return p && p.done === total && state === tn.status.sent;
  }, 90, () => `the page showing all ${total} handled and “${tn.status.sent}” (saw ${seen.join(" → ") || "no progress"}, state “${state}”)`);
  check(await page.evaluate(() => window.stillThisPage === true), "the page was reloaded");
  check(seen.at(-1) === fill(tn.show.progress_label, { done: total, total }), `the progress ended at “${seen.at(-1)}”`);
  // At one message a second, the page shows the send under way before it is over.
  check(seen.length >= 2, `the page showed no progress before the end (${seen.join(" → ")})`);
  const stats = await text(page.locator("#send-progress dl.stats"));
  check(stats.includes(`${tn.show.sent} ${total}`), `the progress's figures say “${stats}”`);
  return seen;
}

// Waits until every person of the language's audience has exactly one mail with `subjects[their
// language]`.
async function delivered(ctx, lang, subjects) {
  const want = PEOPLE[lang].map(([who, name, language]) => ({ to: address(lang, who), name, language }));
  const count = () => {
    const all = mails(ctx.mailDir);
    return want.map((p) => all.filter((m) => m.to.includes(p.to) && m.subject === subjects[p.language]));
  };
  await until(() => count().every((got) => got.length >= 1), 30,
    () => `a mail for each of the ${want.length} recipients (got ${count().filter((g) => g.length).length})`);
  const got = count();
  got.forEach((list, i) => {
    check(list.length === 1, `${want[i].to} got ${list.length} copies of “${subjects[want[i].language]}”`);
    check(squash(list[0].text).includes(greeting(want[i].language, want[i].name)), `${want[i].to}'s mail does not greet them in their language`);
  });
  return got.length;
}

async function send(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  const people = PEOPLE[lang];
  const byLanguage = { en: people.filter((p) => p[2] === "en").length, es: people.filter((p) => p[2] === "es").length };

  s.at("send: the audience set to the segment");
  await open(page, `${state.path}/edit`);
  await page.locator("#f-audience").selectOption({ label: segmentName(lang) });
  await go(page, page.getByRole("button", { name: tn.edit.save, exact: true }));
  await notice(page, tn.notices.draft_saved);
  const who = await text(page.locator("#who-heading ~ dl.facts"));
  check(who.includes(fill(tn.show.segment, { name: segmentName(lang) })), `the audience says “${who}”`);

  s.at("send: the confirmation step");
  await go(page, page.getByRole("link", { name: tn.show.send, exact: true }));
  check((await h1(page)) === tn.send.title, `the send step is headed “${await h1(page)}”`);
  const rows = await page.locator("#who-heading ~ .table-wrap tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.innerText.trim())));
  for (const language of ["en", "es"]) {
    const row = rows.find((r) => r[0] === tn.language_names[language]);
    check(row, `no row for ${tn.language_names[language]} (rows: ${JSON.stringify(rows)})`);
    const version = language === "es" ? tn.send.spanish_version : tn.send.english_version;
    check(row[1] === version && row[2] === String(byLanguage[language]), `the ${language} row says ${JSON.stringify(row)}, expected ${version}, ${byLanguage[language]}`);
  }
  const total = people.length;
  const foot = await text(page.locator("#who-heading ~ .table-wrap tfoot"));
  check(foot === `${tn.send.total} ${total}`, `the total says “${foot}”`);
  const facts = await text(page.locator("#who-heading ~ dl.facts"));
  check(facts.includes(`${tn.show.from} ${d.from}`), `the send step's From says “${facts}”`);
  check(await page.locator("#f-when-now").isChecked(), "“now” is not the choice made");
  await ctx.checkPage(page, `newsletters/${lang} send step`, lang);

  s.at("send: confirmed now");
  await go(page, page.getByRole("button", { name: fill(tn.send.confirm, { count: total }), exact: true }));
  await notice(page, tn.notices.sending);
  s.at("send: the page follows the progress to sent");
  state.progressSeen = await followToSent(page, tn, total);
  await ctx.checkPage(page, `newsletters/${lang} sent`, lang);

  s.at("send: every recipient's mail reaches the SMTP sink");
  state.delivered = await delivered(ctx, lang, { en: state.subject, es: d.es_subject });
}

// ------------------------------------------------------------- 6. schedule and cancel
async function schedule(page, lang, s, ctx) {
  const tn = T[lang].newsletters;
  const subject = lang === "en" ? "Garden day next week" : "Jornada de huerto";
  s.at("schedule: a second draft");
  await open(page, "/newsletters/new");
  await field(page, "subject").fill(subject);
  await field(page, "html").fill("<p>Hello {{ name }}, bring gloves.</p>");
  await page.locator("#f-audience").selectOption({ label: segmentName(lang) });
  await go(page, page.getByRole("button", { name: tn.edit.create, exact: true }));
  await notice(page, tn.notices.draft_created);
  const path = new URL(page.url()).pathname.slice(CONSOLE.length);

  s.at("schedule: a date and time in the member's time zone");
  await go(page, page.getByRole("link", { name: tn.show.send, exact: true }));
  const hint = await text(page.locator("#h-send_at"));
  check(hint === squash(fill(tn.send.send_at_hint, { zone: ZONES[lang] })), `the time's hint says “${hint}”`);
  const when = tomorrowAt(ZONES[lang], T[lang].months);
  await page.locator("#f-when-later").check();
  await page.locator("#f-send_at").fill(when.typed);
  await go(page, page.getByRole("button", { name: fill(tn.send.confirm, { count: PEOPLE[lang].length }), exact: true }));
  await notice(page, tn.notices.scheduled);
  check((await badge(page)) === tn.status.scheduled, `the state says “${await badge(page)}”`);
  const line = await text(page.locator("main .newsletter-status").first().locator(".."));
  check(line.includes(fill(tn.show.send_at, { when: when.shown })), `the page says “${line}”, expected “${fill(tn.show.send_at, { when: when.shown })}”`);
  await ctx.checkPage(page, `newsletters/${lang} scheduled`, lang);

  s.at("schedule: under Scheduled in the list, with its time");
  const listed = async (status) => {
    await open(page, "/newsletters");
    await go(page, page.locator("nav.tabs").getByRole("link", { name: tn.status[status], exact: true }));
    return page.locator("#newsletter-list tbody tr", { has: page.getByRole("link", { name: subject, exact: true }) });
  };
  const row = await listed("scheduled");
  check((await row.count()) === 1, `“${subject}” is not under ${tn.status.scheduled}`);
  const cells = await text(row);
  check(cells.includes(fill(tn.show.send_at, { when: when.shown })), `its row says “${cells}”, not “${fill(tn.show.send_at, { when: when.shown })}”`);

  s.at("schedule: cancelled");
  await open(page, path);
  // The button cancels at once (its hint says it can't be undone): there is no further step.
  await go(page, page.getByRole("button", { name: tn.show.cancel, exact: true }));
  await notice(page, tn.notices.cancelled);
  check((await badge(page)) === tn.status.cancelled, `after cancelling the state says “${await badge(page)}”`);
  check((await (await listed("cancelled")).count()) === 1, `“${subject}” is not under ${tn.status.cancelled}`);
  check((await (await listed("scheduled")).count()) === 0, `“${subject}” is still under ${tn.status.scheduled}`);
}

// ------------------------------------------------------------- 7. duplicate, then pause and resume
async function duplicate(page, lang, s, ctx, state) {
  const tn = T[lang].newsletters;
  const d = DRAFTS[lang];
  s.at("duplicate: the sent newsletter");
  await open(page, state.path);
  check((await badge(page)) === tn.status.sent, `the newsletter's state is “${await badge(page)}”`);
  await go(page, page.getByRole("button", { name: tn.show.duplicate, exact: true }));
  check(/\/newsletters\/[^/]+\/edit$/.test(new URL(page.url()).pathname), `duplicating led to ${page.url()}`);
  check(!page.url().includes(state.id), "duplicating opened the sent newsletter's own editor");
  check((await h1(page)) === tn.edit.edit_title, `the copy's editor is headed “${await h1(page)}”`);
  await notice(page, tn.notices.duplicated);
  const same = {
    subject: state.subject, html: d.html, text: state.text,
    "variants.es.subject": d.es_subject, "variants.es.html": d.es_html, "variants.es.text": state.esText, from: d.from,
  };
  for (const [name, value] of Object.entries(same)) {
    const got = await field(page, name).inputValue();
    check(got === value, `the copy's ${name} is “${got}”, expected “${value}”`);
  }
  const audience = await page.locator("#f-audience").evaluate((el) => el.selectedOptions[0]?.textContent.trim());
  check(audience === segmentName(lang), `the copy's audience is “${audience}”`);
  await ctx.checkPage(page, `newsletters/${lang} duplicated`, lang);

  s.at("duplicate: the copy saved with a subject of its own");
  const subjects = { en: `${state.subject} (reminder)`, es: `${d.es_subject} (recordatorio)` };
  await field(page, "subject").fill(subjects.en);
  await field(page, "variants.es.subject").fill(subjects.es);
  await go(page, page.getByRole("button", { name: tn.edit.save, exact: true }));
  await notice(page, tn.notices.draft_saved);
  const copy = new URL(page.url()).pathname.slice(CONSOLE.length);

  s.at("pause: sent, then paused at once");
  const total = PEOPLE[lang].length;
  await go(page, page.getByRole("link", { name: tn.show.send, exact: true }));
  await go(page, page.getByRole("button", { name: fill(tn.send.confirm, { count: total }), exact: true }));
  await notice(page, tn.notices.sending);
  // A send confirmed “now” starts within a second: until it has, its page offers no pause.
  const pause = page.getByRole("button", { name: tn.show.pause, exact: true });
  await until(async () => (await pause.count()) === 1 || (await page.reload(), false), 10, "the send starting (a pause button)");
  await go(page, pause);
  await notice(page, tn.notices.paused);
  check((await badge(page)) === tn.status.paused, `after pausing the state says “${await badge(page)}”`);
  check((await page.getByRole("button", { name: tn.show.resume, exact: true }).count()) === 1, "a paused send offers no resume");
  const paused = await progress(page, tn);
  check(paused && paused.done < total, `paused at “${paused?.said}”: the send was over before it could be paused`);
  await ctx.checkPage(page, `newsletters/${lang} paused`, lang);

  s.at("pause: nothing goes out while paused");
  // A message already on its way when the pause came may still be recorded: look a second later,
  // then again after a while.
  const sentSoFar = () => mails(ctx.mailDir).filter((m) => m.subject === subjects.en || m.subject === subjects.es).length;
  await page.waitForTimeout(1_000);
  await page.reload();
  const settled = await progress(page, tn);
  const atPause = sentSoFar();
  await page.waitForTimeout(3_000);
  await page.reload();
  const still = await progress(page, tn);
  check(settled.done < total, `the send was over although paused (${settled.said})`);
  check(still.done === settled.done && sentSoFar() === atPause, `while paused the send went on (${settled.said} → ${still.said}, ${sentSoFar() - atPause} more mails)`);
  check((await badge(page)) === tn.status.paused, `a while after pausing the state says “${await badge(page)}”`);

  s.at("resume: the send goes on to sent");
  await go(page, page.getByRole("button", { name: tn.show.resume, exact: true }));
  await notice(page, tn.notices.resumed);
  await followToSent(page, tn, total);
  await delivered(ctx, lang, subjects);
  state.copy = copy;
}

// ------------------------------------------------------------- 8. a viewer
async function viewer(browser, lang, s, ctx, ids) {
  const tn = T[lang].newsletters;
  const page = await newTab(browser, lang);
  page.expectError = true;
  try {
    s.at(`viewer/${lang}: signs in`);
    await signIn(page, ctx.accounts.viewer, ctx.password, lang);
    await preferences(page, lang, ZONES[lang]);
    s.at(`viewer/${lang}: the list offers no new newsletter`);
    await open(page, "/newsletters");
    check((await page.getByRole("link", { name: tn.new, exact: true }).count()) === 0, "a viewer is offered a new newsletter");
    check((await page.locator(`a[href$="/newsletters/new"]`).count()) === 0, "a viewer's list links to the new newsletter's page");
    s.at(`viewer/${lang}: a draft's and a sent newsletter's pages offer no changes`);
    for (const id of ids) {
      await open(page, `/newsletters/${id}`);
      const main = page.locator("main");
      check((await main.locator("form[method=post]").count()) === 0, `a viewer is offered a form on /newsletters/${id}`);
      check((await main.locator('a[href$="/edit"], a[href$="/send"]').count()) === 0, `a viewer is offered an edit or send link on /newsletters/${id}`);
      for (const name of [tn.show.send, tn.show.edit, tn.show.duplicate, tn.show.delete, tn.show.pause, tn.show.resume, tn.show.cancel, tn.test.send]) {
        check((await main.getByText(name, { exact: true }).count()) === 0, `a viewer sees “${name}” on /newsletters/${id}`);
      }
      check((await page.locator("#f-to").count()) === 0, "a viewer is offered a test send");
      // Reading is allowed: the preview.
      await go(page, page.getByRole("link", { name: tn.show.see_preview, exact: true }));
      check((await page.locator("iframe.preview.desktop").count()) === 1, "a viewer's preview has no frame");
    }
    s.at(`viewer/${lang}: the forbidden page at an editor's addresses`);
    for (const path of ["/newsletters/new", `/newsletters/${ids[0]}/edit`, `/newsletters/${ids[0]}/send`]) {
      await open(page, path, [403]);
      check((await h1(page)) === T[lang].errors.forbidden.title, `${path} is headed “${await h1(page)}” for a viewer`);
    }
    await ctx.checkPage(page, `newsletters/${lang} viewer forbidden`, lang);
  } finally {
    await page.context().close();
  }
}

// ------------------------------------------------------------- running them
const STEPS = { draft, autosave, preview, test: testSend, send, schedule, duplicate };

// Runs the newsletters' flows in English and in Spanish side by side, then the viewer's checks;
// `report(name, seconds, error)` hears of each.
export async function newsletterFlows(browser, { accounts, password, mailDir, shotDir, checkPage, report }) {
  const token = await staffToken(accounts.en, password);
  const { viewerDraft } = await setUp(token, mailDir);
  const checkExpected = async (page, where, lang) => {
    const rest = page.seen.splice(0).filter((seen) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(seen));
    page.seen.push(...rest);
    await checkPage(page, where, lang);
  };
  const ctx = { browser, token, accounts, password, mailDir, checkPage: checkExpected };
  const timed = async (name, work, shot) => {
    const s = new Steps();
    const t0 = Date.now();
    let error = null;
    try {
      await work(s);
    } catch (err) {
      error = `step “${s.now}”: ${err.message.split("\n")[0]}`;
      if (shot) await shot.screenshot({ path: join(shotDir, `newsletters-${name.replace(/\W+/g, "-")}-FAILED.png`), fullPage: true }).catch(() => {});
    }
    report(`newsletter ${name}`, (Date.now() - t0) / 1000, error);
    return !error;
  };
  const sent = {};
  const inLanguage = async (lang) => {
    const page = await newTab(browser, lang);
    page.expectError = true;
    page.context().setDefaultTimeout(15_000);
    const state = {};
    try {
      await signIn(page, accounts[lang], password, lang);
      await preferences(page, lang, ZONES[lang]);
      page.seen.splice(0);
      for (const [name, step] of Object.entries(STEPS)) {
        const ok = await timed(`${name}/${lang}`, (s) => step(page, lang, s, ctx, state), page);
        for (const seen of page.seen.splice(0)) {
          if (!seen.includes("Failed to load resource")) report(`newsletter ${name}/${lang}`, 0, seen);
        }
        if (!ok) break;
      }
      sent[lang] = state.id;
    } finally {
      await page.context().close();
    }
  };
  await Promise.all([inLanguage("en"), inLanguage("es")]);
  await timed("viewer", async (s) => {
    for (const lang of ["en", "es"]) await viewer(browser, lang, s, ctx, [viewerDraft, sent[lang] ?? sent.en ?? viewerDraft]);
  });
}

// ------------------------------------------------------------- keyboard alone
// Signs in, writes a draft and reaches its preview, then the Spanish version's, with the keyboard
// alone (Tab, Shift+Tab, Enter and the arrow keys in a closed <select>); every control passed must
// show its focus.
export async function newsletterKeyboardWalk(browser, { email, password, report }) {
  const tn = T.en.newsletters;
  const page = await newTab(browser, "en");
  const s = new Steps();
  const t0 = Date.now();
  let error = null;
  try {
    s.at("sign in");
    await page.goto(at("/sign-in?lang=en"));
    await typeInto(page, "f-email", email);
    await typeInto(page, "f-password", password);
    await pressAndLoad(page, "Enter", (u) => !u.pathname.endsWith("/sign-in"));

    s.at("newsletters: a new draft");
    await navTo(page, T.en.nav.newsletters);
    await tabTo(page, tn.new);
    await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/newsletters/new"));
    await typeInto(page, "f-subject", "Keyboard news");
    await typeInto(page, "f-html", "<p>Hello {{ name }}, typed without a mouse.</p>");
    await typeInto(page, "f-variants.es.subject", "Noticias por teclado");
    await typeInto(page, "f-variants.es.html", "<p>Hola {{ name }}, escrito sin ratón.</p>");
    await tabTo(page, new RegExp(`^${tn.edit.create}$`));
    await pressAndLoad(page, "Enter", (u) => u.search.includes("notice=draft_created"));
    const heading = squash(await page.locator("h1").innerText());
    if (heading !== "Keyboard news") throw new Error(`the new draft's page is headed “${heading}”`);

    s.at("newsletters: its preview");
    await tabTo(page, tn.show.see_preview);
    await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/preview"));
    if (squash(await page.locator("h1").innerText()) !== tn.preview.title) throw new Error("Enter on the link did not open the preview");
    if ((await page.locator("iframe.preview.desktop").count()) !== 1) throw new Error("the preview shows no desktop frame");

    s.at("newsletters: the Spanish version's preview");
    await tabTo(page, "f-language");
    for (let i = 0; i < 4 && (await page.locator("#f-language").inputValue()) !== "es"; i += 1) await page.keyboard.press("ArrowDown");
    if ((await page.locator("#f-language").inputValue()) !== "es") throw new Error("the arrow keys did not reach Spanish");
    await tabTo(page, new RegExp(`^${tn.preview.show}$`));
    await pressAndLoad(page, "Enter", (u) => u.searchParams.get("language") === "es");
    const facts = squash(await page.locator("main dl.facts").first().innerText());
    if (!facts.includes("Noticias por teclado")) throw new Error(`the Spanish preview says “${facts}”`);
    const seen = page.seen.splice(0);
    if (seen.length) error = seen.join("; ");
  } catch (err) {
    error = `step “${s.now}”: ${err.message.split("\n")[0]}`;
  } finally {
    await page.context().close();
  }
  report("keyboard newsletter", (Date.now() - t0) / 1000, error);
}
