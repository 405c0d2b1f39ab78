// Keyboard-only walks of the console's busiest tasks (Tab, Shift+Tab, Enter, Space and the arrow
// keys in a closed <select>; no mouse, no element.click()); every control passed must show its focus:
//
//   people    sign in, add a person with recorded consent (an interest ticked with Space), search
//             for them by address and open them from the results
//   import    choose the file (setInputFiles: a file chooser is the operating system's), upload, map
//             an unrecognised column with the arrow keys, choose consent, type the evidence, start, see it done
//   API key   name it, tick a scope, create it, copy it with the copy button, back to the list
import { ENLACE_URL, T, at, fill, focused, navTo, newTab, pressAndLoad, squash, tabTo, typeInto } from "./console-kit.mjs";

const csv = [
  "email,Who,language",
  "kbd-one@imports.example,Uno,es",
  "kbd-two@imports.example,Dos,en",
  "broken address,Tres,",
].join("\n") + "\n";

async function settle(page, probe, seconds, what) {
  const end = Date.now() + seconds * 1000;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`${what} did not happen within ${seconds} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function signInByKeyboard(page, email, password) {
  await page.goto(at("/sign-in?lang=en"));
  await typeInto(page, "f-email", email);
  await typeInto(page, "f-password", password);
  await pressAndLoad(page, "Enter", (u) => !u.pathname.endsWith("/sign-in"));
}

async function peopleWalk(page, s) {
  const tp = T.en.people;
  s.at("people: add a person");
  await navTo(page, T.en.nav.people);
  await tabTo(page, tp.add);
  await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/people/new"));
  await typeInto(page, "f-email", "keyboard-person@flows.example");
  await typeInto(page, "f-name", "Kai Board");
  await tabTo(page, "f-interest-news");
  await page.keyboard.press("Space");
  if (!(await page.locator("#f-interest-news").isChecked())) throw new Error("Space did not tick the interest");
  // Tab enters the radio group at its checked button: recorded consent, the default.
  const radio = await tabTo(page, /^f-mode-/);
  if (radio.id !== "f-mode-recorded") throw new Error(`Tab entered the consent choice at ${radio.id}`);
  await typeInto(page, "f-consent_source", "phone call on Monday");
  await typeInto(page, "f-consent_note", "said yes to the monthly news");
  await tabTo(page, new RegExp(`^${tp.new.submit}$`));
  await pressAndLoad(page, "Enter", (u) => u.search.includes("notice=added"));
  const facts = squash(await page.locator("#profile-heading ~ dl.facts").first().innerText());
  if (!facts.includes("Kai Board")) throw new Error(`the added person's profile says “${facts}”`);

  s.at("people: search by address");
  await navTo(page, T.en.nav.people);
  await typeInto(page, "f-email", "keyboard-person@");
  await pressAndLoad(page, "Enter", (u) => u.search.includes("email="));
  s.at("people: open the person found");
  await tabTo(page, /^keyboard-person@flows\.example$/, { max: 60 });
  await pressAndLoad(page, "Enter", (u) => /\/people\/[^/]+$/.test(u.pathname));
  const heading = squash(await page.locator("h1").innerText());
  if (heading !== "keyboard-person@flows.example") throw new Error(`Enter on the result opened “${heading}”`);
}

async function importWalk(page, s) {
  const ti = T.en.imports;
  s.at("import: upload");
  await navTo(page, T.en.nav.imports);
  await page.locator("#f-file").setInputFiles({ name: "keyboard.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await tabTo(page, new RegExp(`^${ti.upload}$`));
  await pressAndLoad(page, "Enter", (u) => u.pathname.includes("/imports/new/"));

  s.at("import: map an unrecognised column with the arrow keys");
  await tabTo(page, "f-column-1");
  const wanted = ti.fields.name;
  const chosen = () => page.locator("#f-column-1").evaluate((el) => el.selectedOptions[0]?.textContent.trim());
  // Down through the list, then up if it lies above the choice made.
  for (let i = 0; i < 12 && (await chosen()) !== wanted; i += 1) await page.keyboard.press("ArrowDown");
  for (let i = 0; i < 24 && (await chosen()) !== wanted; i += 1) await page.keyboard.press("ArrowUp");
  if ((await chosen()) !== wanted) throw new Error(`the arrow keys never reached “${wanted}” (at “${await chosen()}”)`);

  s.at("import: consent and evidence");
  const mode = await tabTo(page, /^f-mode/);
  if (mode.id !== "f-mode") {
    // Entered at the other choice: the arrow keys move within a radio group.
    await page.keyboard.press("ArrowUp");
  } else {
    await page.keyboard.press("Space");
  }
  if (!(await page.locator("#f-mode").isChecked())) throw new Error("the keyboard did not choose “they already agreed”");
  await typeInto(page, "f-source", "door-to-door sign-up sheet");
  await typeInto(page, "f-consent_note", "signed to get news by email");

  s.at("import: start");
  await tabTo(page, new RegExp(`^${ti.start}$`));
  await pressAndLoad(page, "Enter", (u) => /\/imports\/[^/]+$/.test(u.pathname) && u.search.includes("notice=started"));
  await settle(page, async () => squash(await page.locator("#import-progress .import-status").innerText()) === ti.status.done, 30, "the import reaching done");
  const counts = squash(await page.locator("#import-progress").innerText());
  if (!counts.includes(fill(ti.rows_done, { done: 3, rows: 3 }))) throw new Error(`the progress says “${counts}”`);
}

async function apiKeyWalk(page, s) {
  const tk = T.en.admin.keys;
  s.at("API key: the form");
  await navTo(page, T.en.nav.api_keys);
  await typeInto(page, "f-name", "Keyboard key");
  await tabTo(page, "scope-1");
  await page.keyboard.press("Space");
  if (!(await page.locator("#scope-1").isChecked())) throw new Error("Space did not tick the scope");
  s.at("API key: create");
  await tabTo(page, new RegExp(`^${tk.create}$`));
  await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/api-keys"));
  const heading = squash(await page.locator("h1").innerText());
  if (heading !== tk.created_title) throw new Error(`after creating the key the page is headed “${heading}”`);
  s.at("API key: copy");
  await tabTo(page, new RegExp(`^${T.en.admin.copy}$`));
  await page.keyboard.press("Space");
  await settle(page, async () => squash(await page.locator("#new-secret-status").innerText()) === T.en.admin.copied, 5, "the copy button saying it copied");
  const secret = squash(await page.locator("#new-secret").innerText());
  if ((await page.evaluate(() => navigator.clipboard.readText())) !== secret) throw new Error("the clipboard does not hold the key");
  s.at("API key: back to the list");
  await tabTo(page, tk.back);
  await pressAndLoad(page, "Enter", (u) => u.pathname.endsWith("/api-keys"));
  const listed = squash(await page.locator("#keys-heading").locator("xpath=..").innerText());
  if (!listed.includes("Keyboard key")) throw new Error("the new key is not in the list");
  const f = await focused(page);
  if (f.kind !== "body" && !f.visible) throw new Error("the focus is not visible after going back");
}

// Runs the walks one after another in one tab; `report(name, seconds, error)` hears of each.
export async function keyboardWalks(browser, { email, password, report }) {
  const page = await newTab(browser, "en");
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: ENLACE_URL });
  try {
    await signInByKeyboard(page, email, password);
    for (const [name, walk] of [["people", peopleWalk], ["import", importWalk], ["API key", apiKeyWalk]]) {
      const s = { now: "start", at(step) { this.now = step; } };
      const t0 = Date.now();
      let error = null;
      try {
        await walk(page, s);
      } catch (err) {
        error = `step “${s.now}”: ${err.message.split("\n")[0]}`;
      }
      const seen = page.seen.splice(0);
      if (!error && seen.length) error = seen.join("; ");
      report(`keyboard ${name}`, (Date.now() - t0) / 1000, error);
      if (error) break;
    }
  } finally {
    await page.context().close();
  }
}
