// The segment builder, driven in headless Chromium as staff use it (one of the flows of
// browser/console-flows.mjs, in English and in Spanish): conditions chosen from lists and typed,
// a group with "any" and "leave out", the count following each change without a click, the JSON
// filter the builder writes (compared with the one expected), the JSON edited by hand and the
// builder following it, a refused condition marked where it is, the segment saved, offered as a
// newsletter's audience, and deleted. The people counted are made for the flow through the JSON
// API at an e-mail domain of the flow's own, so every count is known exactly.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseToml } from "smol-toml";
import { addPerson, check, go, open } from "./console-flows.mjs";
import { fill } from "./console-kit.mjs";

const LOCALES = join(dirname(fileURLToPath(import.meta.url)), "..", "locales", "console");
const WORDS = Object.fromEntries(["en", "es"].map((lang) => [lang, parseToml(readFileSync(join(LOCALES, `segments.${lang}.toml`), "utf8"))]));
const NAV = Object.fromEntries(["en", "es"].map((lang) => [lang, parseToml(readFileSync(join(LOCALES, `frame.${lang}.toml`), "utf8")).nav]));

// What the count says for n people, as the builder words it.
function reaches(lang, n) {
  const b = WORDS[lang].builder;
  return n === 1 ? b.reaches_one : fill(b.reaches, { count: new Intl.NumberFormat(lang).format(n) });
}

// Waits until the count says `text` (it follows each change a moment later, by itself).
async function countIs(page, text) {
  try {
    await page.waitForFunction(
      (want) => {
        const el = document.getElementById("segment-count");
        return el && !el.classList.contains("stale") && el.textContent.trim() === want;
      },
      text,
      { timeout: 8000 },
    );
  } catch {
    const got = await page.locator("#segment-count").textContent();
    throw new Error(`the count says “${got.trim()}”, expected “${text}”`);
  }
}

const condition = (page, n) => page.locator("fieldset.condition").nth(n);
const filterJson = async (page) => JSON.parse(await page.locator("#f-filter").inputValue());
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export async function segments(page, lang, s, ctx) {
  const w = WORDS[lang];
  const b = w.builder;
  const domain = `builder-${lang}.example`;
  s.at("set up people to count");
  // es+news+Phoenix, es+Tucson, en+news+Phoenix, en.
  await Promise.all([
    addPerson(ctx.token, { email: `s1@builder-${lang}.example`, language: "es", interests: ["news"], attributes: { city: "Phoenix" } }),
    addPerson(ctx.token, { email: `s2@builder-${lang}.example`, language: "es", attributes: { city: "Tucson" } }),
    addPerson(ctx.token, { email: `s3@builder-${lang}.example`, language: "en", interests: ["news"], attributes: { city: "Phoenix" } }),
    addPerson(ctx.token, { email: `s4@builder-${lang}.example`, language: "en" }),
  ]);
  s.at("open the builder from the navigation");
  await open(page, "/");
  await go(page, page.locator("nav.areas").getByRole("link", { name: NAV[lang].segments, exact: true }));
  await go(page, page.getByRole("link", { name: w.new, exact: true }));
  await page.locator("[data-segment-builder]:not([hidden])").waitFor();
  check(await page.getByRole("button", { name: w.count, exact: true }).isHidden(), "the Count button shows although the count follows each change");

  s.at("the first condition: an e-mail domain, typed");
  await condition(page, 0).getByLabel(b.kind, { exact: true }).selectOption("email_domain");
  await condition(page, 0).getByLabel(b.value, { exact: true }).fill(domain);
  await countIs(page, reaches(lang, 4));

  s.at("add a condition: an interest chosen from the list");
  await page.getByRole("button", { name: b.add_condition, exact: true }).last().click();
  await condition(page, 1).getByLabel(b.kind, { exact: true }).selectOption("interest");
  await condition(page, 1).getByLabel(b.value, { exact: true }).selectOption("news");
  await countIs(page, reaches(lang, 2));

  s.at("add a group: any of Spanish or a custom field, then leave it out");
  await page.locator("fieldset.root > .actions").getByRole("button", { name: b.add_group, exact: true }).click();
  const group = page.locator("fieldset.group:not(.root)").first();
  await group.getByLabel(b.match, { exact: true }).selectOption("any");
  await group.locator("fieldset.condition").first().getByLabel(b.value, { exact: true }).selectOption("es");
  await countIs(page, reaches(lang, 1)); // s1
  await group.getByRole("button", { name: b.add_condition, exact: true }).click();
  const cityCondition = group.locator("fieldset.condition").nth(1);
  await cityCondition.getByLabel(b.kind, { exact: true }).selectOption("field");
  await cityCondition.getByLabel(b.field, { exact: true }).selectOption("city");
  await cityCondition.getByLabel(b.operator, { exact: true }).selectOption("eq");
  await cityCondition.getByLabel(b.value, { exact: true }).fill("Phoenix");
  await countIs(page, reaches(lang, 2)); // s1 (Spanish), s3 (Phoenix)
  await group.getByLabel(b.exclude).first().check();
  await countIs(page, reaches(lang, 0));

  s.at("the JSON the builder wrote");
  await page.locator("#segment-json > summary").click();
  const expected = {
    all: [
      { email_domain: domain },
      { interest: "news" },
      { not: { any: [{ language: "es" }, { attribute: { key: "city", op: "eq", value: "Phoenix" } }] } },
    ],
  };
  const written = await filterJson(page);
  check(same(written, expected), `the builder wrote ${JSON.stringify(written)}`);

  s.at("the JSON edited by hand, the builder follows");
  const edited = { all: [{ email_domain: domain }, { language: "en" }] };
  await page.locator("#f-filter").fill(JSON.stringify(edited));
  await countIs(page, reaches(lang, 2)); // s3, s4
  check((await page.locator("fieldset.condition").count()) === 2, "the builder does not show the two conditions typed as JSON");
  check((await condition(page, 1).getByLabel(b.value, { exact: true }).inputValue()) === "en", "the builder's language is not the one typed as JSON");

  s.at("a refused condition is marked where it is");
  await condition(page, 0).getByLabel(b.value, { exact: true }).fill("not a domain");
  await countIs(page, b.invalid);
  const marked = (await condition(page, 0).locator(".field-error").textContent()).trim();
  const wanted = lang === "es" ? w.messages["must be a domain such as example.org"] : "must be a domain such as example.org";
  check(marked === wanted, `the refused domain is marked “${marked}”, expected “${wanted}”`);
  await condition(page, 0).getByLabel(b.value, { exact: true }).fill(domain);
  await countIs(page, reaches(lang, 2));

  s.at("save");
  const name = `Builder check ${lang}`;
  await page.getByLabel(w.name, { exact: true }).fill(name);
  await go(page, page.getByRole("button", { name: w.save, exact: true }));
  check((await page.locator(".notice.ok").textContent()).includes(w.notices.created), "no notice that the segment is saved");
  await countIs(page, reaches(lang, 2));
  const segmentUrl = page.url().split("?")[0];
  await ctx.checkPage(page, "segment builder", lang);

  s.at("offered as a newsletter's audience");
  await open(page, "/newsletters/new");
  const offered = await page.locator("#f-audience option").allTextContents();
  check(offered.some((o) => o.trim() === name), `the audience list offers ${offered.join(", ")}`);

  s.at("delete");
  await page.goto(segmentUrl);
  await go(page, page.getByRole("button", { name: w.delete, exact: true }));
  check((await page.locator(".notice.ok").textContent()).includes(w.notices.deleted), "no notice that the segment is deleted");
  check(!(await page.content()).includes(name), "the deleted segment is still listed");
}
