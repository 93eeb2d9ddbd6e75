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
  const q = m.queues;
  return [
    { id: "latency-p50", title: "change → client p50", value: ms(f.latencyP50Ms), target: `≤ ${f.latencyTargetMs} ms`,
      ok: f.latencyP50Ms == null ? null : f.latencyP50Ms <= f.latencyTargetMs },
    { id: "latency-p99", title: "change → client p99", value: ms(f.latencyP99Ms), target: `≤ ${f.latencyTargetMs} ms`,
      ok: f.latencyP99Ms == null ? null : f.latencyP99Ms <= f.latencyTargetMs },
    { id: "throughput", title: "changes applied per second", value: num(f.throughputPerSecond),
      target: `≥ ${num(f.throughputTargetPerSecond)} /s (AWS)`, ok: null,
      detail: `${num(f.changesApplied)} in ${f.windowSeconds} s` },
    { id: "change-errors", title: "changes failed or malformed", value: pct(f.changeErrorPercent),
      target: `≤ ${f.lossTargetPercent} %`, ok: f.changeErrorPercent == null ? null : f.changeErrorPercent <= f.lossTargetPercent },
    { id: "rest-errors", title: "REST 5xx", value: pct(f.restErrorPercent), target: `≤ ${f.lossTargetPercent} %`,
      ok: f.restErrorPercent == null ? null : f.restErrorPercent <= f.lossTargetPercent },
    { id: "queue-depth", title: "changes queue depth", value: num(q.changes), target: `alarm > ${num(m.queueDepthAlarm)}`,
      ok: q.changes <= m.queueDepthAlarm },
    { id: "dlq", title: "in the dead-letter queues", value: num(q.changesDeadLetters + q.photoJobsDeadLetters),
      target: "0", ok: q.changesDeadLetters + q.photoJobsDeadLetters === 0,
      detail: `changes ${q.changesDeadLetters}, photo jobs ${q.photoJobsDeadLetters}` },
    { id: "pushes", title: "pushes sent / gone / failed", value: `${num(f.pushesSent)} / ${num(f.pushesGone)} / ${num(f.pushesFailed)}`,
      target: "failed 0", ok: f.pushesSent + f.pushesGone + f.pushesFailed === 0 ? null : f.pushesFailed === 0 },
    ...f.breakers.map(([name, state]) => ({
      id: `breaker-${name}`, title: `breaker ${name}`, value: breakerName[state] ?? state,
      target: "closed", ok: state === 0,
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
  root.dataset.latency = m.figures.latencyP50Ms == null ? "none" : "some";
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
