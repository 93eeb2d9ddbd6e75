// The live catalogue page: opens the SSE stream first and holds its events, loads the
// catalogue from the REST API once the stream's start is fixed (its `ready` event), then
// applies the held events and every later one by version. So a change made while the page
// loads is either in what the REST API returned or in the stream: none falls between.
// EventSource reconnects by itself and resumes with Last-Event-ID.
const grid = document.getElementById("grid");
const status = document.getElementById("status");
const counter = document.getElementById("updates");
let updates = 0;

function setStatus(state, text) {
  status.className = `status ${state}`;
  status.dataset.state = state;
  status.textContent = text;
}

const money = (cents, currency) =>
  new Intl.NumberFormat("en-GB", { style: "currency", currency }).format(cents / 100);

function card(p, restUrl) {
  const el = document.createElement("article");
  el.className = "card";
  el.dataset.productId = p.productId;
  el.dataset.version = p.version;
  el.innerHTML = `
    <img alt="" loading="lazy">
    <p class="name"></p>
    <span class="category"></span>
    <div class="price"></div>
    <div class="stock"></div>
    <div class="version"></div>`;
  el.querySelector("img").src = restUrl + (p.photos.thumb || p.photos.full);
  el.querySelector("img").alt = p.name;
  el.querySelector(".name").textContent = p.name;
  el.querySelector(".category").textContent = p.category;
  el.dataset.currency = p.currency;
  show(el, p.priceCents, p.stock, p.version);
  return el;
}

function show(el, priceCents, stock, version) {
  el.querySelector(".price").textContent = money(priceCents, el.dataset.currency);
  const s = el.querySelector(".stock");
  s.textContent = stock > 0 ? `${stock} in stock` : "out of stock";
  s.classList.toggle("out", stock <= 0);
  el.querySelector(".version").textContent = `v${version}`;
  el.dataset.version = version;
}

function flash(el) {
  el.classList.add("flash");
  setTimeout(() => el.classList.remove("flash"), 50);
  counter.textContent = `${++updates} update${updates === 1 ? "" : "s"}`;
}

async function loadCatalogue(restUrl) {
  const products = [];
  let cursor = null;
  do {
    const url = new URL(`${restUrl}/products`, location.href);
    url.searchParams.set("limit", "100");
    if (cursor) url.searchParams.set("cursor", cursor);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET /products answered ${response.status}`);
    const page = await response.json();
    products.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return products;
}

function applyChange(change) {
  const el = grid.querySelector(`[data-product-id="${change.productId}"]`);
  if (!el || Number(el.dataset.version) >= change.version) return; // versions only grow
  show(el, change.product.priceCents, change.product.stock, change.version);
  flash(el);
}

function applyPhoto(change) {
  const el = grid.querySelector(`[data-product-id="${change.productId}"]`);
  if (!el) return;
  el.querySelector("img").src = change.thumbUrl;
  flash(el);
}

/** Opens the stream; resolves once its start is fixed. Events before `live` are held. */
function listen(sseUrl) {
  const held = [];
  let live = false;
  const source = new EventSource(sseUrl);
  const handle = (apply) => (event) => {
    const change = JSON.parse(event.data);
    if (live) apply(change);
    else held.push(() => apply(change));
  };
  source.addEventListener("productChanged", handle(applyChange));
  source.addEventListener("productPhotoChanged", handle(applyPhoto));
  source.onerror = () => setStatus("reconnecting", "reconnecting…");
  source.onopen = () => {
    if (live) setStatus("live", "live");
  };
  return new Promise((resolve) => {
    source.addEventListener("ready", () => {
      if (live) return setStatus("live", "live"); // a resumed session
      resolve(() => {
        live = true;
        held.splice(0).forEach((apply) => apply());
        setStatus("live", "live");
      });
    });
  });
}

async function main() {
  const config = await (await fetch("config.json")).json();
  if (config.metricsUrl) document.getElementById("metrics-link").href = config.metricsUrl;
  const goLive = await listen(config.sseUrl);
  try {
    const products = await loadCatalogue(config.restUrl);
    grid.replaceChildren(...products.map((p) => card(p, config.restUrl)));
    grid.dataset.loaded = "true";
  } catch (err) {
    setStatus("error", `catalogue unavailable: ${err.message}`);
    return;
  }
  goLive();
}

main();
