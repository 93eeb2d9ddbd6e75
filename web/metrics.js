// The metrics page: polls the local server's /metrics.json every 2 s and shows each figure
// beside its target (green when it meets it, red when it does not, grey without traffic).
const root = document.getElementById("figures");
const readAt = document.getElementById("read-at");

const ms = (v) => (v == null ? "–" : `${Math.round(v)} ms`);
const pct = (v) => (v == null ? "–" : `${v.toFixed(v < 1 ? 3 : 1)} %`);
const num = (v) => new Intl.NumberFormat("en-GB", { maximumFractionDigits: 1 }).format(v);
const breakerName = ["closed", "half-open", "open"];

function cards(m) {
  const f = m.figures;
  const t = f.targets;
  const q = m.queues;
  const within = (v, limit) => (v == null ? null : v <= limit);
  const dead = q.changesDeadLetters + q.photoJobsDeadLetters;
  const pushes = f.pushes.sent + f.pushes.gone + f.pushes.failed;
  return [
    { id: "latency-p50", title: "change → client p50", value: ms(f.latency.p50Ms), target: `≤ ${t.latencyMs} ms`,
      ok: within(f.latency.p50Ms, t.latencyMs) },
    { id: "latency-p99", title: "change → client p99", value: ms(f.latency.p99Ms), target: `≤ ${t.latencyMs} ms`,
      ok: within(f.latency.p99Ms, t.latencyMs) },
    { id: "throughput", title: "changes applied per second", value: num(f.throughputPerSecond),
      target: `≥ ${num(t.throughputPerSecond)} /s (AWS)`, ok: null, detail: `${num(f.changesApplied)} in ${f.windowSeconds} s` },
    { id: "change-errors", title: "changes failed or malformed", value: pct(f.errorPercent.changes),
      target: `≤ ${t.lossPercent} %`, ok: within(f.errorPercent.changes, t.lossPercent) },
    { id: "rest-errors", title: "REST 5xx", value: pct(f.errorPercent.rest), target: `≤ ${t.lossPercent} %`,
      ok: within(f.errorPercent.rest, t.lossPercent) },
    { id: "queue-depth", title: "changes queue depth", value: num(q.changes), target: `alarm > ${num(m.queueDepthAlarm)}`,
      ok: q.changes <= m.queueDepthAlarm },
    { id: "dlq", title: "in the dead-letter queues", value: num(dead), target: "0", ok: dead === 0,
      detail: `changes ${q.changesDeadLetters}, photo jobs ${q.photoJobsDeadLetters}` },
    { id: "pushes", title: "pushes sent / gone / failed", value: `${num(f.pushes.sent)} / ${num(f.pushes.gone)} / ${num(f.pushes.failed)}`,
      target: "failed 0", ok: pushes === 0 ? null : f.pushes.failed === 0 },
    ...f.breakers.map(([name, state]) => ({
      id: `breaker-${name}`, title: `breaker ${name}`, value: breakerName[state] ?? state, target: "closed", ok: state === 0,
    })),
  ];
}

function render(m) {
  root.replaceChildren(...cards(m).map((c) => {
    const el = document.createElement("section");
    el.className = `figure ${c.ok == null ? "idle" : c.ok ? "ok" : "miss"}`;
    el.dataset.figure = c.id;
    el.innerHTML = `<h2></h2><p class="value"></p><p class="target"></p><p class="detail"></p>`;
    el.querySelector("h2").textContent = c.title;
    el.querySelector(".value").textContent = c.value;
    el.querySelector(".target").textContent = `target ${c.target}`;
    el.querySelector(".detail").textContent = c.detail ?? "";
    return el;
  }));
  root.dataset.loaded = "true";
  root.dataset.latency = m.figures.latency.p50Ms == null ? "none" : "some";
  readAt.textContent = `read ${new Date(m.readAt).toLocaleTimeString()}`;
}

async function poll() {
  try {
    const response = await fetch("metrics.json", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error?.message ?? response.status);
    render(body);
  } catch (err) {
    readAt.textContent = `metrics unavailable: ${err.message}`;
  }
  setTimeout(poll, 2000);
}
poll();
