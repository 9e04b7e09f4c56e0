// devtel dashboard in a real browser: Debian's headless Chromium driven by playwright-core.
// Started by tests/tests/dashboard.rs against a gateway fed by a real collector polling
// recorded devices; the collector is stopped first, so the figures hold still.
//
// Environment: DEVTEL_BASE (http://127.0.0.1:PORT), DEVTEL_UNIT and DEVTEL_DEVICE (a unit and
// a copier in it to follow), DEVTEL_SHOTS (folder for screenshots), DEVTEL_REFRESH_S.
// Checks every number shown against the gateway's API, the German labels and the English
// switch, the refresh without a reload, console errors, and WCAG 2 A/AA rules with axe-core.
// Exits 1 with what failed (and a screenshot of the page) on the first failure.

import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const AXE = require.resolve("axe-core/axe.min.js");
const base = process.env.DEVTEL_BASE;
const unitId = process.env.DEVTEL_UNIT;
const deviceId = process.env.DEVTEL_DEVICE;
const shots = process.env.DEVTEL_SHOTS || "shots";
const refreshS = Number(process.env.DEVTEL_REFRESH_S || "60");
fs.mkdirSync(shots, { recursive: true });

const api = async (p) => {
  const r = await fetch(base + p);
  if (!r.ok) throw new Error(`${p}: HTTP ${r.status}`);
  return r.json();
};
// "12.345" (de) / "12,345" (en) → 12345; "99,95 %" → 99.95.
const deNumber = (text) => Number(text.replace(/[^0-9,.-]/g, "").replace(/\./g, "").replace(",", "."));
const enNumber = (text) => Number(text.replace(/[^0-9.-]/g, ""));

let page;
let step = "start";
const consoleErrors = [];
function check(cond, what) {
  if (!cond) throw new Error(`${step}: ${what}`);
}
function eq(got, want, what) {
  check(got === want, `${what}: shown ${JSON.stringify(got)}, API ${JSON.stringify(want)}`);
}

async function axe(name) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const v = result.violations.map(
    (x) => `${x.id} (${x.impact}): ${x.help} — ${x.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; ")}`,
  );
  check(v.length === 0, `accessibility of ${name}:\n  ${v.join("\n  ")}`);
  console.log(`ok: ${name}: no axe-core violations (${result.passes.length} rules passed)`);
}

async function field(selector) {
  const el = await page.$(selector);
  check(el, `${selector} missing`);
  return (await el.innerText()).trim();
}

const STATUS_DE = { ok: "in Ordnung", warning: "Warnung", error: "Störung", unreachable: "nicht erreichbar", unknown: "unbekannt" };

async function main() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  // German first: what the users' browsers ask for.
  const context = await browser.newContext({ locale: "de-DE", viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  try {
    // Overview.
    step = "overview";
    await page.goto(base + "/");
    eq(await page.getAttribute("html", "lang"), "de", "language");
    eq(await field("h1"), "Übersicht", "heading");
    const nav = await field("header nav");
    for (const label of ["Übersicht", "Toner bestellen", "Monatsbericht", "Standorte"]) {
      check(nav.includes(label), `navigation lacks ${label}`);
    }
    check((await field("#as-of")).startsWith("Stand: "), "as-of line");
    const units = await api("/api/units");
    check(units.length >= 3, `${units.length} units`);
    for (const u of units) {
      const row = `tr[data-unit="${u.unit}"]`;
      for (const k of ["ok", "warning", "error", "unreachable"]) {
        eq(deNumber(await field(`${row} [data-field="${k}"]`)), u.status[k], `${u.unit} ${k}`);
      }
      eq(deNumber(await field(`${row} [data-field="pages-mono"]`)), u.pages.month.mono, `${u.unit} pages mono`);
      eq(deNumber(await field(`${row} [data-field="pages-colour"]`)), u.pages.month.colour, `${u.unit} pages colour`);
      const avail = await field(`${row} [data-field="availability"]`);
      if (u.availability.percent !== null) {
        eq(deNumber(avail.split("%")[0]), Math.round(u.availability.percent * 100) / 100, `${u.unit} availability`);
        eq(avail.includes("✓"), u.availability.meets_sla, `${u.unit} target met`);
      }
      eq(deNumber((await field(`${row} [data-field="seats"]`)).split("/")[0]), u.seats.occupied, `${u.unit} seats`);
      eq(deNumber(await field(`${row} [data-field="to-order"]`)), u.supplies_to_order_count ?? u.supplies_to_order.length,
        `${u.unit} supplies to order`);
    }
    console.log(`ok: overview shows the figures of ${units.length} units as the API does`);
    await page.screenshot({ path: path.join(shots, "overview.png"), fullPage: true });
    await axe("overview");

    // Follow a unit.
    step = `unit ${unitId}`;
    await Promise.all([page.waitForURL(`**/units/${unitId}`), page.click(`tr[data-unit="${unitId}"] th a`)]);
    const u = await api(`/api/units/${unitId}`);
    eq(await field("h1"), u.name ?? u.unit, "heading");
    eq(deNumber(await field('[data-field="devices"]')), u.devices_total, "devices");
    eq(deNumber(await field('.card [data-field="pages-month"]')), u.pages.month.total, "pages this month");
    const devices = await api(`/api/devices?unit=${encodeURIComponent(unitId)}`);
    eq((await page.$$("tr[data-device]")).length, devices.length, "device rows");
    for (const d of devices) {
      const badge = await field(`tr[data-device="${d.device}"] .status`);
      eq(badge, STATUS_DE[d.status], `${d.device} status`);
      if (d.kind === "copier") {
        eq(deNumber(await field(`tr[data-device="${d.device}"] [data-field="pages-month"]`)), d.pages_month.total,
          `${d.device} pages this month`);
      }
    }
    check((await page.$$("svg.chart")).length >= 2, "charts");
    console.log(`ok: unit ${unitId} shows ${devices.length} devices and the figures of the API`);
    await page.screenshot({ path: path.join(shots, "unit.png"), fullPage: true });
    await axe(`unit ${unitId}`);

    // Refresh without a full reload: a mark set now survives the refresh.
    step = "refresh";
    await page.evaluate(() => { window.__devtelMark = 1; });
    await page.waitForFunction(() => document.documentElement.dataset.refreshed, null,
      { timeout: (refreshS * 3 + 5) * 1000 });
    eq(await page.evaluate(() => window.__devtelMark), 1, "no full reload");
    check(await page.$("#main h1"), "content after the refresh");
    console.log("ok: the unit page refreshed its content without a reload");

    // Follow a device.
    step = `device ${deviceId}`;
    await Promise.all([page.waitForURL(`**/devices/${deviceId}`), page.click(`tr[data-device="${deviceId}"] th a`)]);
    const d = await api(`/api/devices/${deviceId}`);
    check((await field("h1")).startsWith(deviceId), "heading");
    const identity = await field("table.identity");
    check(identity.includes(d.model), `model ${d.model}`);
    check(identity.includes(d.serial), `serial ${d.serial}`);
    const marker = await page.$('th:text-is("Markierwerk 1") + td');
    check(marker, "marker counter row");
    eq(deNumber(await marker.innerText()), d.page_count, "page counter");
    for (const s of d.supplies.filter((s) => s.level_percent !== null)) {
      check((await page.$$(`.supply [aria-label="${s.description}: ${s.level_percent} %"]`)).length >= 1,
        `supply bar ${s.description} ${s.level_percent} %`);
    }
    console.log(`ok: device ${deviceId}: identity, page counter and ${d.supplies.length} supplies as in the API`);
    await axe(`device ${deviceId}`);

    // An unreachable device is marked.
    step = "unreachable";
    const all = await api("/api/devices");
    const down = all.find((x) => x.status === "unreachable");
    check(down, "a device is unreachable (the test configures one)");
    await page.goto(`${base}/devices/${encodeURIComponent(down.device)}`);
    eq(await field("h1 .status"), "nicht erreichbar", "badge");
    check((await field("p.stale")).startsWith("Nicht erreichbar"), "unreachable note");
    console.log(`ok: ${down.device} is marked unreachable`);

    // Supplies to order, over all units.
    step = "supplies";
    await page.goto(base + "/supplies");
    const toOrder = all.reduce((n, x) => n + x.supplies_to_order.length, 0);
    eq((await page.$$("#to-order tbody tr")).length, toOrder, "rows");
    await axe("supplies");
    console.log(`ok: supplies to order: ${toOrder} rows`);

    // Collectors.
    step = "collectors";
    await page.goto(base + "/collectors");
    const collectors = await api("/api/collectors");
    for (const [id, c] of Object.entries(collectors)) {
      const missing = c.epochs.reduce((n, e) => n + e.missing, 0);
      const received = c.epochs.reduce((n, e) => n + e.received, 0);
      eq(deNumber(await field(`tr[data-collector="${id}"] [data-field="missing"]`)), missing, `${id} missing`);
      eq(deNumber(await field(`tr[data-collector="${id}"] [data-field="received"]`)), received, `${id} received`);
    }
    await axe("collectors");
    console.log(`ok: collectors: ${Object.keys(collectors).length} as in the API`);

    // The printable report.
    step = "report";
    const month = units[0].as_of.slice(0, 7);
    await page.goto(`${base}/reports/monthly?month=${month}`);
    const report = await api(`/api/reports/monthly?month=${month}`);
    check((await field("h1")).startsWith("Kostenstellenbericht"), "heading");
    eq(deNumber(await field('[data-field="pages-total"]')), report.pages.total, "pages");
    eq(deNumber(await field('[data-field="cost-total"]')), report.cost_cents / 100, "cost");
    eq((await page.$$("section.cost-centre")).length, report.cost_centres.length, "cost centres");
    // Printed: no navigation, one page per cost centre.
    await page.emulateMedia({ media: "print" });
    eq(await page.$eval("header.top", (e) => getComputedStyle(e).display), "none", "navigation in print");
    const breaks = await page.$$eval("section.cost-centre", (all) => all.map((e) => getComputedStyle(e).breakAfter));
    check(breaks.slice(0, -1).every((b) => b === "page"), `page breaks after cost centres: ${breaks}`);
    const pdf = await page.pdf({ format: "A4" });
    const pages = (pdf.toString("latin1").match(/\/Type\s*\/Page[^s]/g) || []).length;
    check(pages >= report.cost_centres.length, `${pages} printed pages for ${report.cost_centres.length} cost centres`);
    await page.emulateMedia({ media: "screen" });
    console.log(`ok: the report prints on ${pages} pages, one or more per cost centre`);
    await axe("report");
    console.log(`ok: report ${month}: ${report.cost_centres.length} cost centres, ${report.cost_cents} cents`);

    // The English switch, kept in a cookie.
    step = "english";
    await page.goto(base + "/");
    await Promise.all([page.waitForURL("**/?lang=en"), page.click("a.lang")]);
    eq(await page.getAttribute("html", "lang"), "en", "language");
    eq(await field("h1"), "Overview", "heading");
    check((await field("header nav")).includes("Supplies to order"), "navigation");
    check((await field("#as-of")).startsWith("As of: "), "as-of line");
    const first = units[0];
    eq(enNumber(await field(`tr[data-unit="${first.unit}"] [data-field="pages-mono"]`)), first.pages.month.mono,
      "pages in English format");
    await page.goto(`${base}/units/${unitId}`);
    eq(await page.getAttribute("html", "lang"), "en", "language kept");
    await axe("unit in English");
    await Promise.all([page.waitForURL("**lang=de"), page.click("a.lang")]);
    eq(await page.getAttribute("html", "lang"), "de", "switched back");
    console.log("ok: English by the switch, kept across pages, and back");

    step = "console";
    check(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join("\n  ")}`);
    console.log("ok: no console errors");
  } catch (e) {
    const shot = path.join(shots, `failed-${step.replace(/[^a-z0-9]+/gi, "-")}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`FAILED ${e.message}\n(screenshot: ${shot}; page ${page.url()})`);
    if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join("\n  ")}`);
    await browser.close();
    process.exit(1);
  }
  await browser.close();
}

main().catch((e) => {
  console.error(`FAILED ${e.stack || e}`);
  process.exit(1);
});
