// Browser test of the live catalogue page, in Debian's headless Chromium driven by
// playwright-core: open the page on the running local stack while the generator runs back to
// back, and see every card end at the table's version; trigger a change (one generator run),
// and see the changed cards show the new price and stock; then follow the page's metrics link
// and see the figures of those changes.
// Screenshots are saved as test artifacts (.local/artifacts/live-page.png, metrics-page.png).
//
//   PAGE_URL=http://127.0.0.1:4600/ node tests/browser/live-page.test.mjs   (scripts/test runs it)
import { chromium } from "playwright-core";
import { mkdirSync, readFileSync, copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const pageUrl = process.env.PAGE_URL || "http://127.0.0.1:4600/";
const endpoint = (process.env.AWS_ENDPOINT_URL || "http://127.0.0.1:4566").replace(/\/$/, "");
const outputs = JSON.parse(readFileSync(join(root, ".local/outputs.json"), "utf8"));
const artifacts = join(root, ".local/artifacts");
mkdirSync(artifacts, { recursive: true });

const money = (cents, currency) =>
  new Intl.NumberFormat("en-GB", { style: "currency", currency }).format(cents / 100);

async function runGenerator() {
  const response = await fetch(
    `${endpoint}/2015-03-31/functions/${outputs.GeneratorFunctionName}/invocations`,
    { method: "POST", body: readFileSync(join(root, "events/generator/scheduled.json")) },
  );
  const report = await response.json();
  if (!Array.isArray(report.published) || report.published.length === 0) {
    throw new Error(`the generator published nothing: ${JSON.stringify(report)}`);
  }
  return report.published;
}

/** Runs the generator back to back until the returned function is called. */
function flowChanges() {
  let running = true;
  const loop = (async () => {
    let runs = 0;
    while (running) {
      await runGenerator();
      runs += 1;
    }
    return runs;
  })();
  return async () => {
    running = false;
    return loop;
  };
}

/** Every product's version as the REST API reads it from the table. */
async function tableVersions() {
  const config = await (await fetch(new URL("config.json", pageUrl))).json();
  const versions = {};
  let cursor = null;
  do {
    const url = new URL(`${config.restUrl}/products`, pageUrl);
    url.searchParams.set("limit", "100");
    if (cursor) url.searchParams.set("cursor", cursor);
    const page = await (await fetch(url)).json();
    for (const p of page.items) versions[p.productId] = p.version;
    cursor = page.nextCursor;
  } while (cursor);
  return versions;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
try {
  // The page loads while changes flow: every card must still end at the table's version.
  const stopChanges = flowChanges();
  await page.goto(pageUrl);
  await page.waitForSelector("#grid[data-loaded=true] .card", { timeout: 30_000 });
  const cards = await page.locator(".card").count();
  if (cards !== 60) throw new Error(`expected 60 product cards, found ${cards}`);
  await page.waitForSelector('#status[data-state="live"]', { timeout: 30_000 });
  await new Promise((resolve) => setTimeout(resolve, 2_000));
  const runs = await stopChanges();
  console.log(`grid loaded with ${cards} cards while the generator ran ${runs} times; stream live`);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const table = await tableVersions();
    const shown = await page.$$eval(".card", (els) => els.map((el) => [el.dataset.productId, Number(el.dataset.version)]));
    const behind = shown.filter(([id, version]) => version !== table[id]).map(([id, v]) => `${id} v${v} (table v${table[id]})`);
    if (behind.length === 0) break;
    if (Date.now() > deadline) throw new Error(`${behind.length} cards differ from the table: ${behind.join(", ")}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  console.log("ok: every card shows the table's version");

  const published = await runGenerator();
  for (const change of published) {
    const card = page.locator(`.card[data-product-id="${change.productId}"]`);
    const currency = await card.getAttribute("data-currency");
    const price = money(change.current.priceCents, currency);
    const stock = change.current.stock > 0 ? `${change.current.stock} in stock` : "out of stock";
    await page.waitForFunction(
      ({ id, version }) => Number(document.querySelector(`.card[data-product-id="${id}"]`)?.dataset.version) >= version,
      { id: change.productId, version: change.version },
      { timeout: 30_000 },
    );
    const shown = [await card.locator(".price").textContent(), await card.locator(".stock").textContent()];
    if (shown[0] !== price || shown[1] !== stock) {
      throw new Error(`${change.productId} v${change.version}: shows ${shown.join(" / ")}, expected ${price} / ${stock}`);
    }
    console.log(`${change.productId} v${change.version}: ${price}, ${stock}`);
  }
  await page.locator(`.card[data-product-id="${published[0].productId}"]`).evaluate((el) => el.classList.add("flash"));
  await page.screenshot({ path: join(artifacts, "live-page.png") });
  if (process.env.UPDATE_SCREENSHOT) copyFileSync(join(artifacts, "live-page.png"), join(root, "docs/live-page.png"));
  console.log(`ok: ${published.length} changed cards show their new price and stock; screenshot .local/artifacts/live-page.png`);

  // The metrics page, through the live page's link: the figures of the changes just made.
  await page.click("#metrics-link");
  await page.waitForSelector('#figures[data-loaded=true][data-latency=some]', { timeout: 30_000 });
  const p50 = await page.locator('[data-figure="latency-p50"] .value').textContent();
  const applied = await page.locator('[data-figure="throughput"] .detail').textContent();
  if (!/^\d+ ms$/.test(p50)) throw new Error(`the latency figure reads ${JSON.stringify(p50)}`);
  if (!/^[1-9]/.test(applied)) throw new Error(`no applied changes counted: ${JSON.stringify(applied)}`);
  await page.screenshot({ path: join(artifacts, "metrics-page.png") });
  if (process.env.UPDATE_SCREENSHOT) copyFileSync(join(artifacts, "metrics-page.png"), join(root, "docs/metrics-page.png"));
  console.log(`ok: the metrics page shows change → client p50 ${p50}, ${applied}; screenshot .local/artifacts/metrics-page.png`);
} catch (err) {
  failed = true;
  console.error(`FAILED: ${err.message}`);
  await page.screenshot({ path: join(artifacts, "live-page-failure.png") }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
