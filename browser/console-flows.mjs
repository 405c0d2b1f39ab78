// The staff console's main flows, driven in headless Chromium as staff members use them: clicking,
// typing, choosing files, submitting forms and reading what the page then says (in English and in
// Spanish, from the console's own wording in locales/console/). Each step that fails names itself.
//
//   people     search by address, name, status, interest, language and field; the next page of
//              results; open, edit; add with recorded consent (refused without evidence, the error
//              tied to its field), add by sending a confirmation (the mail reaches the SMTP sink);
//              unsubscribe; the access export (the downloaded file's content); erase (a wrong
//              address refused, then the typed one)
//   catalog    an interest in both languages: create, edit, mark private, move up and down; deleting
//              it refused while people have it (with their count), then forced with the typed slug;
//              a custom field created, edited and deleted
//   imports    a CSV with bad rows through the file input: detected columns, one mapped by hand,
//              consent and its evidence, the progress page reaching done, the refused rows and their
//              reasons, the downloaded report
//   segments   the builder: conditions and a group chosen and typed, the count following each
//              change, the JSON it writes, the JSON edited by hand, a refusal marked in place,
//              saved, offered as a newsletter's audience, deleted (browser/console-segments.mjs)
//   exports    a segment and a format chosen, the downloaded file's rows are exactly the segment's
//   admin      a staff account created with a first password, its role changed, disabled; an API key
//              with a scope shown once, copied, used against the JSON API from node, revoked (one or
//              two steps, whatever the page asks); a webhook to a local receiver, tested, its
//              delivery seen
//   roles      a viewer sees no add or edit controls and gets the forbidden page at an editor's
//              address; an editor gets it at an admin's
//
// The data each flow needs besides what it makes itself (people to page through, a segment, a custom
// field to search by) is set up through the JSON API first.
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { CONSOLE, ENLACE_URL, T, api, at, chooseLanguage, fill, message, newTab, signIn, squash, staffToken } from "./console-kit.mjs";
import { segments } from "./console-segments.mjs";

const PAGING = 55; // more than one page of people (50)

// ------------------------------------------------------------- helpers
// A flow's steps: `s.at("name")` before each one, so a failure says where it happened.
class Steps {
  constructor() {
    this.now = "start";
    this.done = [];
  }
  at(name) {
    if (this.now !== "start") this.done.push(this.now);
    this.now = name;
  }
}

export function check(ok, what) {
  if (!ok) throw new Error(what);
}

// Clicks something that leads to another page; returns the response (its status is checked).
export async function go(page, locator, want = [200]) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), locator.click()]);
  const status = response?.status();
  if (!want.includes(status)) throw new Error(`the page answered ${status} (${page.url()}), expected ${want.join(" or ")}`);
  return response;
}

export async function open(page, path, want = [200]) {
  const response = await page.goto(at(path));
  const status = response?.status();
  if (!want.includes(status)) throw new Error(`${path} answered ${status}, expected ${want.join(" or ")}`);
  return response;
}

const text = async (locator) => squash(await locator.innerText());
const h1 = (page) => text(page.locator("h1"));

// The notice a page shows after a change (role=status).
async function notice(page, expected) {
  const got = await text(page.locator(".notice[role=status]").first()).catch(() => "(no notice)");
  check(got === squash(expected), `the page says “${got}”, expected “${squash(expected)}”`);
}

// A field's error is shown next to it and tied to it: aria-invalid, aria-describedby naming the
// message, which says `expected`.
async function fieldError(page, inputId, expected) {
  const input = page.locator(`[id="${inputId}"]`);
  check((await input.getAttribute("aria-invalid")) === "true", `#${inputId} is not marked aria-invalid`);
  const ids = ((await input.getAttribute("aria-describedby")) ?? "").split(/\s+/).filter((id) => id.startsWith("e-"));
  check(ids.length === 1, `#${inputId} names no error message in aria-describedby`);
  const said = await text(page.locator(`[id="${ids[0]}"]`));
  check(said.includes(squash(expected)), `the error for #${inputId} says “${said}”, expected “${expected}”`);
}

// The addresses in the people list's results.
const listed = (page) => page.locator("#results-heading ~ .table-wrap tbody th a").allInnerTexts();

async function download(page, locator) {
  const [file] = await Promise.all([page.waitForEvent("download"), locator.click()]);
  const failure = await file.failure();
  check(!failure, `the download failed: ${failure}`);
  return { name: file.suggestedFilename(), body: readFileSync(await file.path(), "utf8") };
}

// A small CSV reader (quotes, doubled quotes, any one-character separator).
function parseCsv(body, sep = ",") {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < body.length; i += 1) {
    const c = body[i];
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === sep) {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && body[i + 1] === "\n") i += 1;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows.filter((r) => r.some((v) => v !== ""));
}

// Waits until `probe()` is truthy, up to `seconds`.
async function until(probe, seconds, what) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`${what} did not happen within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// One at a time (a promise chain): for what both languages' runs share.
let queue = Promise.resolve();
const serially = (work) => {
  const run = queue.then(work, work);
  queue = run.catch(() => {});
  return run;
};

// ------------------------------------------------------------- the JSON API (setting up only)


const recorded = { mode: "recorded", source: "browser test set-up", note: "agreed to hear from us" };
export const addPerson = (token, person) => api(token, "POST", "/subscribers", { consent: recorded, ...person });

// Set up once for both languages: people to page through and a custom field to search by.
async function setUp(token) {
  await api(token, "POST", "/fields", { key: "city", type: "text", public: false }).catch((err) => {
    if (!/409|already/.test(err.message)) throw err;
  });
  const all = Array.from({ length: PAGING }, (_, i) => `page-${String(i).padStart(3, "0")}@paging.example`);
  for (let i = 0; i < all.length; i += 11) {
    await Promise.all(all.slice(i, i + 11).map((email) => addPerson(token, { email })));
  }
}

// ------------------------------------------------------------- 1. people
async function people(page, lang, s, ctx) {
  const tp = T[lang].people;
  const domain = `flows-${lang}.example`;
  const rosa = `rosa-${lang}@${domain}`;
  const pablo = `pablo-${lang}@${domain}`;
  const rosaName = lang === "en" ? "Rosa Englund" : "Rosa Espinoza";

  s.at("add a person: the form");
  await open(page, "/people");
  await go(page, page.getByRole("link", { name: tp.add, exact: true }));
  check((await h1(page)) === tp.new.title, `the add page's heading is “${await h1(page)}”`);
  await page.locator("#f-email").fill(rosa);
  await page.locator("#f-name").fill(rosaName);
  await page.locator("#f-language").selectOption("es");
  await page.locator("#f-interest-events").check();
  await page.locator("#f-field-city").fill("Tucson");
  await page.locator("#f-mode-recorded").check();

  s.at("add a person: recorded consent without evidence is refused");
  await go(page, page.getByRole("button", { name: tp.new.submit, exact: true }), [422]);
  await page.locator("[role=alert]").first().waitFor();
  await fieldError(page, "f-consent_source", message(lang, "say where consent was given (1 to 500 characters)"));
  await fieldError(page, "f-consent_note", message(lang, "describe the consent given (1 to 500 characters)"));
  // The summary's entry leads to the field.
  const toField = page.locator("[role=alert] a[href='#f-consent_source']");
  check((await toField.count()) === 1, "the error summary has no link to the “where they agreed” field");
  await toField.click();
  check(await page.evaluate(() => document.activeElement?.id === "f-consent_source"), "the summary's link does not move the focus to the field");
  check((await page.locator("#f-email").inputValue()) === rosa, "the form lost the address typed");
  await ctx.checkPage(page, `flows/${lang} people new (errors)`, lang);

  s.at("add a person: with the evidence");
  await page.locator("#f-consent_source").fill("sign-up sheet at the March meeting");
  await page.locator("#f-consent_note").fill("ticked “send me news by email”");
  await go(page, page.getByRole("button", { name: tp.new.submit, exact: true }));
  await notice(page, tp.notices.added);
  check((await h1(page)) === rosa, `the person's page is headed “${await h1(page)}”`);
  const rosaPath = new URL(page.url()).pathname.slice(CONSOLE.length);

  s.at("add a person by sending a confirmation");
  await open(page, "/people/new");
  await page.locator("#f-email").fill(pablo);
  await page.locator("#f-name").fill("Pablo");
  await page.locator("#f-language").selectOption("en");
  await page.locator("#f-interest-news").check();
  await page.locator("#f-mode-confirmation").check();
  await go(page, page.getByRole("button", { name: tp.new.submit, exact: true }));
  await notice(page, tp.notices.confirmation_sent);
  const mail = await until(() => ctx.mailTo(pablo), 15, `a confirmation mail to ${pablo}`);
  check(mail.text.includes(`${ENLACE_URL}/`), "the confirmation mail holds no link to Enlace");

  s.at("search");
  const search = async (fields, expected, absent = []) => {
    await open(page, "/people");
    for (const [id, value] of Object.entries(fields)) {
      const field = page.locator(`#f-${id}`);
      if ((await field.evaluate((el) => el.tagName)) === "SELECT") await field.selectOption(value);
      else await field.fill(value);
    }
    await go(page, page.getByRole("button", { name: tp.search_button, exact: true }));
    check((await text(page.locator("#results-heading"))) === tp.results, "the results are not headed as a search's");
    const got = await listed(page);
    for (const e of expected) check(got.includes(e), `searching ${JSON.stringify(fields)} did not find ${e} (found ${got.join(", ") || "nobody"})`);
    for (const e of absent) check(!got.includes(e), `searching ${JSON.stringify(fields)} found ${e}`);
    // The search stays in the form.
    for (const [id, value] of Object.entries(fields)) {
      check((await page.locator(`#f-${id}`).inputValue()) === value, `the search form forgot ${id}`);
    }
    return got;
  };
  s.at("search by address");
  const byAddress = await search({ email: `rosa-${lang}@` }, [rosa]);
  check(byAddress.length === 1, `searching by address found ${byAddress.length} people`);
  s.at("search by name");
  await search({ name: rosaName.split(" ")[1].toLowerCase() }, [rosa], [pablo]);
  s.at("search by status");
  await search({ email: `@${domain}`, status: "pending" }, [pablo], [rosa]);
  await search({ email: `@${domain}`, status: "confirmed" }, [rosa], [pablo]);
  s.at("search by interest");
  await search({ email: `@${domain}`, interest: "events" }, [rosa], [pablo]);
  s.at("search by language");
  await search({ email: `@${domain}`, language: "en" }, [pablo], [rosa]);
  s.at("search by field");
  await search({ email: `@${domain}`, field: "city", value: "Tucson" }, [rosa], [pablo]);
  s.at("search by field without a value is refused");
  await open(page, "/people");
  await page.locator("#f-field").fill("city");
  await go(page, page.getByRole("button", { name: tp.search_button, exact: true }), [422]);
  check(squash(await page.locator(".field-error").first().innerText()).length > 0, "no error shown for a field without a value");

  s.at("the next page of results");
  const first = await search({ email: "@paging.example" }, []);
  check(first.length === 50, `the first page shows ${first.length} people, expected 50`);
  await go(page, page.locator("a[rel=next]"));
  const second = await listed(page);
  check(second.length === PAGING - 50, `the second page shows ${second.length} people, expected ${PAGING - 50}`);
  check(second.every((e) => !first.includes(e)), "the second page repeats people of the first");
  check((await page.locator("a[rel=next]").count()) === 0, "the last page still offers a next page");
  check((await page.locator("#f-email").inputValue()) === "@paging.example", "the next page forgot the search");
  await go(page, page.getByRole("link", { name: tp.first_page, exact: true }));
  check((await listed(page)).join() === first.join(), "back to the first page shows other people");

  s.at("open a person");
  await search({ email: rosa }, [rosa]);
  await go(page, page.getByRole("link", { name: rosa, exact: true }));
  check((await h1(page)) === rosa, `the person's page is headed “${await h1(page)}”`);
  const facts = await text(page.locator("#profile-heading ~ dl.facts").first());
  check(facts.includes(rosaName) && facts.includes(tp.languages.es) && facts.includes(T[lang].status.confirmed), `the profile says “${facts}”`);

  s.at("edit a person");
  await go(page, page.getByRole("link", { name: tp.person.edit, exact: true }));
  check((await h1(page)) === fill(tp.edit.title, { email: rosa }), `the edit page is headed “${await h1(page)}”`);
  await page.locator("#f-name").fill(`${rosaName} Díaz`);
  await page.locator("#f-interest-news").check();
  await page.locator("#f-field-city").fill("Phoenix");
  await go(page, page.getByRole("button", { name: tp.edit.save, exact: true }));
  await notice(page, tp.notices.saved);
  const edited = await text(page.locator("#profile-heading").locator("xpath=.."));
  check(edited.includes(`${rosaName} Díaz`) && edited.includes("Phoenix"), `after the edit the profile says “${edited.slice(0, 300)}”`);

  s.at("unsubscribe");
  await go(page, page.getByRole("button", { name: tp.person.unsubscribe, exact: true }));
  await notice(page, tp.notices.unsubscribed);
  check((await text(page.locator("#profile-heading ~ dl.facts").first())).includes(T[lang].status.unsubscribed), "the profile does not say unsubscribed");
  check((await page.getByRole("button", { name: tp.person.unsubscribe, exact: true }).count()) === 0, "the unsubscribe button is still offered");

  s.at("download the access export");
  const got = await download(page, page.getByRole("link", { name: tp.person.download, exact: true }));
  check(got.name.endsWith(".json"), `the download is named ${got.name}`);
  const data = JSON.parse(got.body);
  check(data.subscriber?.email === rosa, `the access export is for ${data.subscriber?.email}`);
  check(data.subscriber?.attributes?.city === "Phoenix", "the access export lacks the custom field");
  const actions = (data.consent ?? []).map((c) => c.action);
  check(actions.includes("staff_recorded") && actions.includes("unsubscribe"), `the access export's consent history is ${actions.join(", ")}`);

  s.at("erase: a wrong address is refused");
  await go(page, page.getByRole("link", { name: tp.person.erase, exact: true }));
  check((await h1(page)) === fill(tp.erase.title, { email: rosa }), `the erase page is headed “${await h1(page)}”`);
  await page.locator("#f-confirm").fill(pablo);
  await go(page, page.getByRole("button", { name: tp.erase.submit, exact: true }), [422]);
  await fieldError(page, "f-confirm", message(lang, "type the person's address exactly to erase them"));
  await ctx.checkPage(page, `flows/${lang} erase (refused)`, lang);
  await open(page, rosaPath);

  s.at("erase with the typed address");
  await go(page, page.getByRole("link", { name: tp.person.erase, exact: true }));
  await page.locator("#f-confirm").fill(rosa.toUpperCase());
  await go(page, page.getByRole("button", { name: tp.erase.submit, exact: true }));
  await notice(page, tp.notices.erased);
  await search({ email: rosa }, [], [rosa]);
  check((await page.locator("main").innerText()).includes(tp.none_found), "searching for the erased person does not say nobody matches");
  await open(page, rosaPath, [404]);
}

// ------------------------------------------------------------- 2. interests and fields
async function catalog(page, lang, s, ctx) {
  const tc = T[lang].catalog;
  const slug = `flow-${lang}`;
  const key = `flow_${lang}`;

  // From its creation to its deletion, one language at a time: the interests' order is shared (a
  // new interest may land anywhere until staff first order them), and a move is relative to it.
  await serially(async () => {
    s.at("create an interest");
    await open(page, "/interests");
    await page.locator("#f-slug").fill(slug);
    await page.locator('[id="f-name.en"]').fill(`Flow test ${lang}`);
    await page.locator('[id="f-name.es"]').fill(`Prueba ${lang}`);
    await page.locator('[id="f-description.en"]').fill("Made by the browser test.");
    await page.locator('[id="f-description.es"]').fill("Creado por la prueba del navegador.");
    await page.locator("#f-public").check();
    await go(page, page.getByRole("button", { name: tc.create_interest, exact: true }));
    await notice(page, tc.notices.interest_created);
    check((await h1(page)) === fill(tc.interest_heading, { slug }), `the new interest's page is headed “${await h1(page)}”`);

    s.at("edit the interest and mark it private");
    await page.locator('[id="f-name.en"]').fill(`Flow test ${lang}, edited`);
    await page.locator("#f-public").uncheck();
    await go(page, page.getByRole("button", { name: tc.save, exact: true }));
    await notice(page, tc.notices.interest_saved);
    check((await page.locator('[id="f-name.en"]').inputValue()) === `Flow test ${lang}, edited`, "the edited name is not kept");
    check(!(await page.locator("#f-public").isChecked()), "the interest is still public");
    await open(page, "/interests");
    const row = page.locator("tbody tr", { has: page.locator(`a[href$="/interests/${slug}"]`) });
    check((await text(row)).includes(`Flow test ${lang}, edited`) && (await text(row)).includes(tc.private), `the list shows “${await text(row)}”`);

    s.at("move the interest up and down");
    await open(page, "/interests");
    const order = () => page.locator("tbody th a code").allInnerTexts();
    const before = await order();
    const at0 = before.indexOf(slug);
    check(at0 > 0, `the new interest is at position ${at0} of ${before.join(", ")}`);
    const above = before[at0 - 1];
    // Where `a` stands right before `b`.
    const adjacent = (list, a, b) => list.indexOf(a) >= 0 && list.indexOf(b) === list.indexOf(a) + 1;
    await go(page, page.getByRole("button", { name: fill(tc.move_up, { slug }), exact: true }));
    await notice(page, tc.notices.interest_moved);
    const up = await order();
    check(adjacent(up, slug, above), `after moving ${slug} up the order is ${up.join(", ")}`);
    await go(page, page.getByRole("button", { name: fill(tc.move_down, { slug }), exact: true }));
    await notice(page, tc.notices.interest_moved);
    const down = await order();
    check(adjacent(down, above, slug), `after moving ${slug} down again the order is ${down.join(", ")}`);

    s.at("delete refused while people have it");
    await Promise.all([1, 2].map((n) => addPerson(ctx.token, { email: `holder-${n}-${lang}@flows.example`, interests: [slug] })));
    await open(page, `/interests/${slug}`);
    await go(page, page.getByRole("button", { name: tc.delete, exact: true }), [409]);
    const refusal = await text(page.locator("#delete-heading ~ [role=alert]"));
    check(refusal === fill(tc.interest_in_use_count, { count: 2 }), `the refusal says “${refusal}”`);
    await ctx.checkPage(page, `flows/${lang} interest in use`, lang);

    s.at("forced delete: a wrong slug is refused");
    await page.locator("#f-confirm").fill(`${slug}-typo`);
    await go(page, page.getByRole("button", { name: tc.delete_anyway, exact: true }), [422]);
    await fieldError(page, "f-confirm", message(lang, "does not match the slug"));

    s.at("forced delete with the typed slug");
    await page.locator("#f-confirm").fill(slug);
    await go(page, page.getByRole("button", { name: tc.delete_anyway, exact: true }));
    await notice(page, tc.notices.interest_deleted);
    check((await page.locator(`a[href$="/interests/${slug}"]`).count()) === 0, "the deleted interest is still listed");
  });

  s.at("create a custom field");
  await open(page, "/fields");
  await page.locator("#f-key").fill(key);
  await page.locator("#f-type").selectOption("one_of");
  await page.locator("#f-allowed_values").fill("small\nlarge");
  await go(page, page.getByRole("button", { name: tc.create_field, exact: true }));
  await notice(page, tc.notices.field_created);
  check((await h1(page)) === fill(tc.field_heading, { key }), `the new field's page is headed “${await h1(page)}”`);
  check((await text(page.locator("dl.details"))).includes(tc.types.one_of), "the field's type is not shown");

  s.at("edit the custom field");
  await page.locator("#f-allowed_values").fill("small\nmedium\nlarge");
  await page.locator("#f-public").check();
  await go(page, page.getByRole("button", { name: tc.save, exact: true }));
  await notice(page, tc.notices.field_saved);
  await open(page, "/fields");
  const fieldRow = await text(page.locator("tbody tr", { has: page.locator(`a[href$="/fields/${key}"]`) }));
  check(fieldRow.includes("small, medium, large") && fieldRow.includes(tc.public), `the fields list shows “${fieldRow}”`);

  s.at("delete the custom field");
  await go(page, page.locator(`a[href$="/fields/${key}"]`));
  await go(page, page.getByRole("button", { name: tc.delete, exact: true }));
  await notice(page, tc.notices.field_deleted);
  check((await page.locator(`a[href$="/fields/${key}"]`).count()) === 0, "the deleted field is still listed");
}

// ------------------------------------------------------------- 3. imports
// A CSV with four good rows and three bad ones: line 3 (no address), 5 (not an address), 7 (the
// same address again).
const importCsv = (lang) => [
  "email,name,language,Ciudad,notes",
  `ana-${lang}@imports.example,Ana,es,Oaxaca,met at the fair`,
  ",Nobody,en,Austin,",
  `ben-${lang}@imports.example,Ben,en,Austin,`,
  "not-an-address,Broken,en,,",
  `cy-${lang}@imports.example,Cy,,Tucson,`,
  `ana-${lang}@imports.example,Ana again,es,,`,
  `dee-${lang}@imports.example,Dee,en,,`,
].join("\r\n") + "\r\n";

async function chooseCsv(page, lang) {
  await page.locator("#f-file").setInputFiles({ name: `people-${lang}.csv`, mimeType: "text/csv", buffer: Buffer.from(importCsv(lang)) });
}

async function imports(page, lang, s, ctx) {
  const ti = T[lang].imports;
  s.at("upload a CSV");
  await open(page, "/imports");
  await chooseCsv(page, lang);
  await go(page, page.getByRole("button", { name: ti.upload, exact: true }));
  check((await h1(page)) === ti.map_title, `after the upload the page is headed “${await h1(page)}”`);

  s.at("the detected columns");
  const columns = await page.locator("table.mapping tbody th label").allInnerTexts();
  check(columns.join() === "email,name,language,Ciudad,notes", `the columns shown are ${columns.join(", ")}`);
  const chosen = async (i) => page.locator(`#f-column-${i}`).inputValue();
  check((await chosen(0)) === "email" && (await chosen(1)) === "name" && (await chosen(2)) === "language", `the columns were detected as ${await chosen(0)}, ${await chosen(1)}, ${await chosen(2)}`);
  check((await chosen(4)) === "ignore", `the notes column is set to ${await chosen(4)}`);
  check((await text(page.locator("#n-column-3"))) === ti.not_recognised, "the unknown column is not said to be unrecognised");
  await ctx.checkPage(page, `flows/${lang} import map`, lang);

  s.at("map a column, choose consent and evidence");
  await page.locator("#f-column-3").selectOption({ label: fill(ti.custom_field, { key: "city" }) });
  await page.locator("#f-mode").check();
  await page.locator("#f-source").fill("volunteer fair sign-up sheet");
  await page.locator("#f-consent_note").fill("ticked “email me news”");
  await page.locator("#f-language").selectOption(lang);
  await page.getByLabel("events", { exact: true }).check();

  s.at("start the import");
  await go(page, page.getByRole("button", { name: ti.start, exact: true }));
  await notice(page, ti.notices.started);

  s.at("the progress page reaches done");
  // The page refreshes its progress by itself (console.js); nothing is reloaded here.
  await until(async () => (await text(page.locator("#import-progress .import-status"))) === ti.status.done, 30, "the import reaching “done” on the page");
  const progress = await text(page.locator("#import-progress"));
  check(progress.includes(fill(ti.rows_done, { done: 7, rows: 7 })), `the progress says “${progress}”`);

  s.at("the refused rows and their reasons");
  await page.reload();
  const rows = await page.locator("#report-heading ~ .table-wrap tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.innerText.trim())));
  const lines = rows.map((r) => Number(r[0]));
  for (const line of [3, 5, 7]) check(lines.includes(line), `the report lacks line ${line} (it lists ${lines.join(", ")})`);
  check(rows.every((r) => r[3].length > 0), "a reported row gives no reason");
  check(!lines.includes(2) && !lines.includes(4), `good rows are reported: ${lines.join(", ")}`);

  s.at("download the report");
  const got = await download(page, page.getByRole("link", { name: ti.download, exact: true }));
  const csv = parseCsv(got.body);
  const header = csv[0].map((h) => h.toLowerCase());
  const lineAt = header.indexOf("line");
  check(lineAt >= 0, `the report's header is ${csv[0].join(",")}`);
  const reported = csv.slice(1).map((r) => Number(r[lineAt]));
  check([3, 5, 7].every((l) => reported.includes(l)), `the downloaded report lists lines ${reported.join(", ")}`);

  s.at("the imported people");
  // An address search matches the start of the address, or everyone at a domain (`@…`): both
  // languages' imports share the domain, so this language's people are picked from them.
  await open(page, `/people?email=${encodeURIComponent("@imports.example")}`);
  const found = (await listed(page)).filter((a) => a.endsWith(`-${lang}@imports.example`)).sort();
  const want = ["ana", "ben", "cy", "dee"].map((n) => `${n}-${lang}@imports.example`);
  check(found.join() === want.join(), `the import added ${found.join(", ")}`);
}

// ------------------------------------------------------------- 4. exports
async function exportsFlow(page, lang, s, ctx) {
  const te = T[lang].exports;
  const domain = `export-${lang}.example`;
  const wanted = ["a", "b", "c"].map((n) => `${n}@${domain}`);
  s.at("set up a segment");
  await Promise.all(wanted.map((email) => addPerson(ctx.token, { email, name: `Export ${email}` })));
  await addPerson(ctx.token, { email: `outside@export-other-${lang}.example` });
  const segment = `Export check ${lang}`;
  await api(ctx.token, "POST", "/segments", { name: segment, filter: { email_domain: domain } });

  s.at("choose the segment and a format");
  await open(page, "/exports");
  await page.locator("#f-segment_id").selectOption({ label: fill(te.segment, { name: segment }) });
  const ndjson = lang === "es";
  await page.locator(ndjson ? "#f-format-ndjson" : "#f-format-csv").check();
  if (!ndjson) await page.locator("#f-delimiter").selectOption("semicolon");

  s.at("download");
  const got = await download(page, page.getByRole("button", { name: te.download, exact: true }));
  let emails;
  if (ndjson) {
    check(got.name.endsWith(".ndjson"), `the file is named ${got.name}`);
    emails = got.body.trim().split("\n").map((l) => JSON.parse(l).email);
  } else {
    check(got.name.endsWith(".csv"), `the file is named ${got.name}`);
    const csv = parseCsv(got.body.replace(/^\uFEFF/, ""), ";");
    const at0 = csv[0].indexOf("email");
    check(at0 >= 0, `the CSV's header is ${csv[0].join(";")}`);
    emails = csv.slice(1).map((r) => r[at0]);
  }
  check(emails.sort().join() === wanted.join(), `the export holds ${emails.join(", ")}, expected ${wanted.join(", ")}`);
}

// ------------------------------------------------------------- 5. admin
async function admin(page, lang, s, ctx) {
  const ta = T[lang].admin;
  const staff = `staff-${lang}@flows.example`;

  s.at("create a staff account");
  await open(page, "/staff");
  await page.locator("#f-email").fill(staff);
  await page.locator("#f-role").selectOption("editor");
  await page.locator("#f-password").fill("a first password for the new member");
  await go(page, page.getByRole("button", { name: ta.staff.create, exact: true }));
  await notice(page, ta.notices.staff_created);
  const row = () => page.locator("tbody tr", { has: page.locator("th", { hasText: staff }) });
  check((await text(row())).includes(T[lang].roles.editor), `the new member's row says “${await text(row())}”`);

  // Presses a form's button, then the confirmation the page may ask for: a button of a form that
  // posts to the same address (the dangerous one if there are several), until a notice shows.
  const confirmed = async (button, said) => {
    const action = await button.evaluate((b) => b.form.getAttribute("action"));
    await go(page, button);
    for (let i = 0; i < 2 && (await page.locator(".notice[role=status]").count()) === 0; i += 1) {
      const same = page.locator(`main form[action="${action}"] button[type=submit]`);
      // Else the page's one dangerous button, or its one button.
      const again = (await same.count()) > 0 ? same
        : (await page.locator("main form button.danger[type=submit]").count()) === 1 ? page.locator("main form button.danger[type=submit]")
          : page.locator("main form button[type=submit]");
      const danger = again.and(page.locator(".danger"));
      const confirm = (await danger.count()) === 1 ? danger : again;
      check((await confirm.count()) === 1, `after ${s.now} the page shows no notice and ${await confirm.count()} buttons to confirm with`);
      await go(page, confirm);
    }
    await notice(page, said);
  };

  s.at("change the member's role");
  await row().getByLabel(fill(ta.staff.role_of, { email: staff }), { exact: true }).selectOption("viewer");
  await confirmed(row().getByRole("button", { name: ta.staff.change_role, exact: true }), ta.notices.role_changed);
  check((await text(row())).includes(T[lang].roles.viewer), `after the change the row says “${await text(row())}”`);

  s.at("disable the member");
  await confirmed(row().getByRole("button", { name: `${ta.staff.disable} ${staff}`, exact: true }), ta.notices.disabled);
  check((await text(row())).includes(ta.staff.disabled), `after disabling the row says “${await text(row())}”`);
  check(await row().getByRole("button", { name: `${ta.staff.enable} ${staff}`, exact: true }).isVisible(), "no enable button for the disabled member");

  s.at("create an API key");
  const keyName = `Flow key ${lang}`;
  await open(page, "/api-keys");
  await page.locator("#f-name").fill(keyName);
  await page.locator("label", { hasText: "subscribers:read" }).click();
  await go(page, page.getByRole("button", { name: ta.keys.create, exact: true }), [200, 201]);
  check((await h1(page)) === ta.keys.created_title, `after creating the key the page is headed “${await h1(page)}”`);
  const secret = await text(page.locator("#new-secret"));
  check(/^enl_[A-Za-z0-9_-]{20,}$/.test(secret), "the new key is not shown");
  await ctx.checkPage(page, `flows/${lang} key created`, lang);

  s.at("copy the key");
  await page.getByRole("button", { name: ta.copy, exact: true }).click();
  await until(async () => (await text(page.locator("#new-secret-status"))) === ta.copied, 5, "the copy button saying it copied");
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  check(clip === secret, "the clipboard does not hold the key");

  s.at("the key is shown only once");
  await go(page, page.getByRole("link", { name: ta.keys.back, exact: true }));
  check(!(await page.content()).includes(secret), "the key list shows the secret again");

  s.at("use the key against the JSON API");
  const withKey = (method, path, body) => fetch(`${ENLACE_URL}/api/v1${path}`, {
    method, headers: { Authorization: `Bearer ${secret}`, "Content-Type": "application/json" }, body: body && JSON.stringify(body),
  });
  const read = await withKey("GET", "/subscribers?limit=1");
  check(read.status === 200, `reading people with the key answered ${read.status}`);
  check(Array.isArray((await read.json()).data), "reading people with the key gave no list");
  const write = await withKey("POST", "/subscribers", { email: "nobody@flows.example", consent: { mode: "confirmation" } });
  check(write.status === 403, `writing with a read-only key answered ${write.status}`);

  s.at("revoke the key");
  await page.reload();
  const keyRow = page.locator("tbody tr", { has: page.locator("th", { hasText: keyName }) });
  await confirmed(keyRow.getByRole("button", { name: `${ta.keys.revoke} ${keyName}`, exact: true }), ta.notices.key_revoked);
  const revokedRow = await text(page.locator("tbody tr", { has: page.locator("th", { hasText: keyName }) }));
  check(revokedRow.includes(fill(ta.keys.revoked_on, { when: "" }).trim()), `the revoked key's row says “${revokedRow}”`);
  const after = await withKey("GET", "/subscribers?limit=1");
  check(after.status === 401, `the revoked key still answers ${after.status}`);

  s.at("create a webhook");
  const path = `/hook-${lang}`;
  await open(page, "/webhooks");
  await page.locator("#f-url").fill(`${ctx.hookUrl}${path}`);
  await page.locator("#f-description").fill(`Browser test ${lang}`);
  await page.locator("#event-1").check();
  await go(page, page.getByRole("button", { name: ta.webhooks.create, exact: true }), [200, 201]);
  check((await h1(page)) === ta.webhooks.created_title, `after adding the endpoint the page is headed “${await h1(page)}”`);
  check(/\S{16,}/.test(await text(page.locator("#new-secret"))), "the endpoint's signing secret is not shown");
  await go(page, page.getByRole("link", { name: ta.webhooks.to_endpoint, exact: true }));

  s.at("send a test event");
  await go(page, page.getByRole("button", { name: ta.webhooks.test, exact: true }));
  await notice(page, ta.notices.test_queued);
  await until(() => ctx.hooks.some((h) => h.path === path), 15, "the test event reaching the receiver");
  s.at("see the delivery");
  // The test's own row (the endpoint's other events may arrive meanwhile).
  const testRow = page.locator("#deliveries tbody tr", { has: page.locator("th", { hasText: "webhook.test" }) });
  await until(async () => {
    await page.reload();
    return (await testRow.count()) === 1 && (await text(testRow)).includes(ta.webhooks.states.delivered);
  }, 20, "the test delivery showing as delivered");
  const answer = await text(testRow);
  check(answer.includes(fill(ta.webhooks.http_status, { code: 204 })), `the delivery's row says “${answer}”`);
}

// ------------------------------------------------------------- viewers and editors
async function roles(browser, lang, s, ctx) {
  const t = T[lang];
  const page = await newTab(browser, lang);
  page.expectError = true;
  try {
    s.at(`${lang}: viewer signs in`);
    await signIn(page, ctx.accounts.viewer, ctx.password, lang);
    await chooseLanguage(page, lang);
    s.at(`${lang}: viewer sees no add or edit controls`);
    await open(page, "/people");
    check((await page.getByRole("link", { name: t.people.add, exact: true }).count()) === 0, "a viewer is offered “add a person”");
    await go(page, page.locator("tbody th a").first());
    for (const name of [t.people.person.edit, t.people.person.erase]) {
      check((await page.getByRole("link", { name, exact: true }).count()) === 0, `a viewer is offered “${name}”`);
    }
    check((await page.locator("main form").count()) === 0, "a viewer's person page has a form");
    await open(page, "/interests");
    check((await page.locator("main form").count()) === 0, "a viewer's interests page has a form");
    await open(page, "/imports");
    check((await page.locator("#f-file").count()) === 0, "a viewer is offered an upload");
    check((await page.locator("nav a", { hasText: t.nav.exports }).count()) === 0, "a viewer's navigation offers exports");
    s.at(`${lang}: viewer gets the forbidden page at an editor's address`);
    for (const path of ["/people/new", "/exports"]) {
      await open(page, path, [403]);
      check((await h1(page)) === t.errors.forbidden.title, `${path} is headed “${await h1(page)}” for a viewer`);
      check((await page.locator("html").getAttribute("lang")) === lang, `${path} is not in ${lang}`);
    }
    await ctx.checkPage(page, `flows/${lang} viewer forbidden`, lang);
  } finally {
    await page.context().close();
  }
  if (lang !== "en") return;
  const editor = await newTab(browser, lang);
  editor.expectError = true;
  try {
    s.at("editor gets the forbidden page at an admin's address");
    await signIn(editor, ctx.accounts.editor, ctx.password, lang);
    await open(editor, "/people/new");
    for (const path of ["/staff", "/api-keys"]) {
      await open(editor, path, [403]);
      check((await h1(editor)) === t.errors.forbidden.title, `${path} is headed “${await h1(editor)}” for an editor`);
    }
  } finally {
    await editor.context().close();
  }
}

// ------------------------------------------------------------- running them
const FLOWS = { people, catalog, segments, imports, exports: exportsFlow, admin };

// A receiver for webhooks on loopback: answers 204 and keeps what it got.
function hookReceiver() {
  const hooks = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d)).on("end", () => {
      hooks.push({ path: req.url, body, headers: req.headers });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, hooks, url: `http://127.0.0.1:${server.address().port}` })));
}

// The mails the SMTP sink kept for one address, newest last.
function mailReader(folder) {
  return (to) => {
    const names = readdirSync(folder).filter((n) => n.endsWith(".json")).sort();
    const mails = names.map((n) => JSON.parse(readFileSync(join(folder, n), "utf8"))).filter((m) => m.to.includes(to));
    return mails.at(-1);
  };
}

// Runs every flow in English (as one admin) and in Spanish (as another) side by side; `report(name,
// seconds, error)` is told of each. Returns when all are done.
export async function runFlows(browser, { accounts, password, mailDir, shotDir, checkPage, report }) {
  const token = await staffToken(accounts.en, password);
  await setUp(token);
  const receiver = await hookReceiver();
  // The flows expect their 4xx answers (a refused form, the forbidden page): the browser's note of
  // each is no fault of the page checked.
  const checkExpected = async (page, where, lang) => {
    const rest = page.seen.splice(0).filter((seen) => !/Failed to load resource: the server responded with a status of 4\d\d/.test(seen));
    page.seen.push(...rest);
    await checkPage(page, where, lang);
  };
  const ctx = { token, hooks: receiver.hooks, hookUrl: receiver.url, mailTo: mailReader(mailDir), checkPage: checkExpected, accounts, password };
  const timed = async (name, work) => {
    const s = new Steps();
    const t0 = Date.now();
    let error = null;
    try {
      await work(s);
    } catch (err) {
      error = `step “${s.now}”: ${err.message.split("\n")[0]}`;
    }
    report(`flow ${name}`, (Date.now() - t0) / 1000, error);
  };
  const inLanguage = async (lang) => {
    const page = await newTab(browser, lang);
    page.expectError = true;
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: ENLACE_URL });
    page.context().setDefaultTimeout(15_000);
    try {
      await signIn(page, accounts[lang], password, lang);
      await chooseLanguage(page, lang);
      for (const [name, flow] of Object.entries(FLOWS)) {
        await timed(`${name}/${lang}`, async (s) => {
          try {
            await flow(page, lang, s, ctx);
          } catch (err) {
            await page.screenshot({ path: join(shotDir, `flow-${name}-${lang}-FAILED.png`), fullPage: true }).catch(() => {});
            throw err;
          }
        });
        for (const seen of page.seen.splice(0)) {
          if (!seen.includes("Failed to load resource")) report(`flow ${name}/${lang}`, 0, seen);
        }
      }
    } finally {
      await page.context().close();
    }
  };
  // The receiver stays up while the crawl runs (the endpoint gets more events) but keeps no one waiting.
  receiver.server.unref();
  await Promise.all([inLanguage("en"), inLanguage("es")]);
  await timed("roles", async (s) => {
    await roles(browser, "en", s, ctx);
    await roles(browser, "es", s, ctx);
  });
}
