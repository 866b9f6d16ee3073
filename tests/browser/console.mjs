// The preview console in a real browser: Debian's chromium, headless, driven by
// puppeteer-core, against the edge in Viceroy. tests/e2e/browser.rs starts the edge (as
// http://localhost:PORT) and the "other site" (http://127.0.0.1:PORT2, another site for
// SameSite), mints the links, and runs this with:
//   EDGE, OTHER, LOGIN, FORGED, EXPIRED, FORGED_SHARE, EXPIRED_SHARE, SHOTS (screenshot
//   folder), CHROMIUM.
// Every step asserts; the first failure exits non-zero with what was on the page.
import assert from "node:assert/strict";
import puppeteer from "puppeteer-core";

const { EDGE, OTHER, LOGIN, FORGED, EXPIRED, FORGED_SHARE, EXPIRED_SHARE, SHOTS, CHROMIUM } = process.env;
const step = (what) => console.log(`browser: ${what}`);
let page;

/** Clicks a link to `to` on a page of the other site, as from chat or e-mail. */
async function clickFromOtherSite(p, to) {
  await p.goto(`${OTHER}/?to=${encodeURIComponent(to)}`);
  const [response] = await Promise.all([p.waitForNavigation(), p.click("#go")]);
  return response;
}

/** Waits until the page's path is `path` (a meta refresh lands there). */
async function landOn(p, path) {
  await p.waitForFunction((want) => location.pathname === want, { timeout: 10000 }, path);
  await p.waitForSelector("body");
}

const text = (p, selector) => p.$eval(selector, (e) => e.textContent.trim());

async function run() {
  // A: the QA person's browser.
  const a = await browser.createBrowserContext();
  page = await a.newPage();

  step("no login: the console is a 404");
  let r = await page.goto(`${EDGE}/.edgeflags/console`);
  assert.equal(r.status(), 404);

  step("click the login link from another site");
  r = await clickFromOtherSite(page, LOGIN);
  assert.equal(r.status(), 200);
  await landOn(page, "/.edgeflags/console");
  assert.equal(await text(page, "h1"), "edgeflags console");
  const cookies = await page.cookies();
  const session = cookies.find((c) => c.name === "ef_console");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, "Strict");
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("ef_console"), "scripts cannot read it");
  assert.ok((await text(page, "#previewing")).startsWith("No preview"));

  step("set Tokyo, Saturday 10:00 and checkout=v2");
  await page.type("#place", "Tokyo, JP (Asia/Tokyo)");
  await page.$eval("#at", (e) => { e.value = "2026-11-28T10:00"; });
  await page.select("#v-checkout", "v2");
  await Promise.all([page.waitForNavigation(), page.click("#apply")]);
  assert.equal(new URL(page.url()).pathname, "/.edgeflags/console");
  const previewing = await text(page, "#previewing");
  assert.match(previewing, /Tokyo, JP \(Asia\/Tokyo\)/);
  assert.match(previewing, /Sat 2026-11-28 10:00 \+09:00/);
  assert.match(previewing, /checkout=v2/);
  assert.equal(await text(page, "tr[data-flag=checkout] td:nth-child(2)"), "v2");
  assert.equal(await text(page, "tr[data-flag=banner] td:nth-child(2)"), "weekend_sale");
  assert.match(await text(page, "#context"), /Asia\/Tokyo \(chosen by: token\)/);
  const preview = (await page.cookies()).find((c) => c.name === "ef_preview");
  assert.ok(preview && preview.httpOnly && preview.secure && preview.sameSite === "Strict", "preview cookie");
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("ef_preview"));
  await page.setViewport({ width: 1100, height: 900 });
  await page.screenshot({ path: `${SHOTS}/console.png`, fullPage: false });
  const share = await page.$eval("#share", (e) => e.value);
  // The console's one script (script-src 'self') runs: Copy puts the link on the clipboard.
  await a.overridePermissions(EDGE, ["clipboard-read", "clipboard-write", "clipboard-sanitized-write"]);
  await page.click("#copy");
  await page.waitForFunction(() => document.getElementById("copied").textContent !== "");
  assert.equal(await text(page, "#copied"), "Copied");
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), share);

  step("another site's form cannot change the preview; no page may frame the console");
  const evil = await a.newPage();
  await evil.goto(`${OTHER}/?post=${encodeURIComponent(`${EDGE}/.edgeflags/console/preview`)}`);
  [r] = await Promise.all([evil.waitForNavigation(), evil.click("#send")]);
  // SameSite=Strict: the session cookie is not sent with another site's POST.
  assert.equal(r.status(), 404);
  await evil.close();
  // Not even a page of its own site may frame it (the cookies would be sent there).
  await page.goto(`${EDGE}/`);
  await page.evaluate(() => {
    const f = document.createElement("iframe");
    f.src = "/.edgeflags/console";
    document.body.appendChild(f);
    return new Promise((done) => f.addEventListener("load", done));
  });
  const inFrame = page.frames().find((f) => f !== page.mainFrame());
  assert.ok(inFrame, "the frame");
  const framed = await inFrame.content().catch(() => "");
  assert.ok(!framed.includes("edgeflags console"), "the console rendered in a frame");
  await page.goto(`${EDGE}/.edgeflags/console`);
  assert.match(await text(page, "#previewing"), /Tokyo, JP/, "the preview is unchanged");

  step("the demo page shows Tokyo's Saturday and the toolbar");
  r = await page.goto(`${EDGE}/`);
  assert.equal(r.status(), 200);
  await assertTokyo(page, true);
  await page.screenshot({ path: `${SHOTS}/page-with-toolbar.png` });

  step("the share link, clicked from another site in a fresh browser context");
  const b = await browser.createBrowserContext();
  const teammate = await b.newPage();
  r = await clickFromOtherSite(teammate, share);
  assert.equal(r.status(), 200);
  await landOn(teammate, "/");
  await assertTokyo(teammate, false);
  await b.close();

  step("stop, from the toolbar: the real decisions again");
  await Promise.all([page.waitForNavigation(), page.click("#edgeflags-toolbar button")]);
  assert.equal(new URL(page.url()).pathname, "/");
  assert.equal(await page.$("#edgeflags-toolbar"), null, "no toolbar after stop");
  assert.notEqual(await text(page, "#banner"), "週末セール：全品20%オフ");
  assert.equal(await text(page, "#greeting"), "Welcome to the demo store");
  assert.ok(!(await page.cookies()).some((c) => c.name === "ef_preview"));

  step("keyboard only: Tab reaches every control, Enter submits and stops");
  await page.goto(`${EDGE}/.edgeflags/console`);
  const controls = await page.$$eval("input:not([type=hidden]), select, textarea, button, a[href]", (els) =>
    els.map((e) => e.id || e.getAttribute("href")),
  );
  // The date and time field takes a Tab per part (month, day, year, hour, minute, AM/PM).
  const reached = await tabThrough(page, controls.length + 12);
  for (const c of controls) {
    assert.ok(reached.includes(c), `Tab never reaches ${c} (reached ${reached.join(", ")})`);
  }
  await focusByTab(page, "place");
  await page.keyboard.type("Paris, FR (Europe/Paris)");
  await focusByTab(page, "apply");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.match(await text(page, "#previewing"), /Paris, FR/);
  const withPreview = await page.$$eval("input:not([type=hidden]), select, textarea, button", (els) =>
    els.map((e) => e.id),
  );
  const reachedNow = await tabThrough(page, withPreview.length + 12);
  for (const c of withPreview) {
    assert.ok(reachedNow.includes(c), `Tab never reaches ${c} with a preview on`);
  }
  await page.goto(`${EDGE}/`);
  assert.ok(await page.$("#edgeflags-toolbar"), "the toolbar while Paris is previewed");
  await focusByTab(page, null, "#edgeflags-toolbar button");
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  assert.equal(await page.$("#edgeflags-toolbar"), null, "stopped from the keyboard");
  await a.close();

  step("forged and expired login links are refused; the console stays a 404");
  for (const link of [FORGED, EXPIRED]) {
    const c = await browser.createBrowserContext();
    const p = await c.newPage();
    page = p;
    r = await clickFromOtherSite(p, link);
    assert.equal(r.status(), 403);
    r = await p.goto(`${EDGE}/.edgeflags/console`);
    assert.equal(r.status(), 404);
    await c.close();
  }
  step("forged and expired share links are refused; no preview follows");
  for (const link of [FORGED_SHARE, EXPIRED_SHARE]) {
    const c = await browser.createBrowserContext();
    const p = await c.newPage();
    page = p;
    r = await clickFromOtherSite(p, link);
    assert.equal(r.status(), 403);
    await p.goto(`${EDGE}/`);
    assert.equal(await p.$("#edgeflags-toolbar"), null);
    assert.equal(await text(p, "#greeting"), "Welcome to the demo store");
    await c.close();
  }
  step("done");
}

/** The demo page as Tokyo's Saturday 10:00 with checkout=v2, and its toolbar. */
async function assertTokyo(p, withConsoleLink) {
  assert.equal(await text(p, "#greeting"), "ようこそ、エッジフラッグのデモストアへ");
  assert.equal(await text(p, "#banner"), "週末セール：全品20%オフ");
  assert.equal(await text(p, "#checkout"), "v2");
  assert.match(await text(p, "#seen"), /visitor:\s+Tokyo, -, JP \(AS\), zone Asia\/Tokyo/);
  const bar = await text(p, "#edgeflags-toolbar");
  assert.match(bar, /edgeflags preview/);
  assert.match(bar, /Tokyo, JP/);
  assert.match(bar, /checkout=v2/);
  assert.equal((await p.$$("#edgeflags-toolbar button")).length, 1, "a stop button");
  assert.equal((await p.$$("#edgeflags-toolbar a[href='/.edgeflags/console']")).length, withConsoleLink ? 1 : 0);
  const fixed = await p.$eval("#edgeflags-toolbar", (e) => getComputedStyle(e).position);
  assert.equal(fixed, "fixed");
}

/** Presses Tab `n` times from the top of the page; the ids (or hrefs) focused. */
async function tabThrough(p, n) {
  await p.evaluate(() => document.activeElement && document.activeElement.blur());
  const seen = [];
  for (let i = 0; i < n; i++) {
    await p.keyboard.press("Tab");
    seen.push(await p.evaluate(() => {
      const e = document.activeElement;
      return e ? e.id || e.getAttribute("href") || e.tagName : "";
    }));
  }
  return seen;
}

/** Presses Tab until the element with `id` (or matching `selector`) has the focus. */
async function focusByTab(p, id, selector) {
  await p.evaluate(() => document.activeElement && document.activeElement.blur());
  for (let i = 0; i < 60; i++) {
    await p.keyboard.press("Tab");
    const hit = await p.evaluate(
      (id, selector) => (selector ? document.activeElement === document.querySelector(selector) : document.activeElement.id === id),
      id,
      selector,
    );
    if (hit) {
      return;
    }
  }
  throw new Error(`Tab never reached ${id || selector}`);
}

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Root in a container: no sandbox; no GPU here.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
try {
  await run();
} catch (e) {
  if (page) {
    const body = await page.evaluate(() => document.body && document.body.innerText).catch(() => "");
    console.error(`browser: failed on ${page.url()}\n${body}`);
    await page.screenshot({ path: `${SHOTS}/failure.png` }).catch(() => {});
  }
  console.error(e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
