#!/usr/bin/env node
// Prints every live update from the WebSocket API on one line. Reconnects with backoff and
// resumes: the subscription after a drop names the last change-log position this client holds
// everything up to (`after`), so the server first sends what it missed, then the live stream.
// A version of a product it already printed is not printed again.
//
//   node clients/ws-echo.mjs [ws-url] [--products p-001,p-002] [--batched]
//
// --batched subscribes with "batched": true: the server sends each consumer batch's changes
// in one `batch` frame, and this client prints them one per line as usual.
// The URL defaults to $WS_URL, then to the local stack (what scripts/dev prints, with a token).
import WebSocket from "ws";
import { describe, localWebSocketUrl } from "./local-stack.mjs";

const args = process.argv.slice(2);
const flag = args.indexOf("--products");
const products = flag >= 0 ? args.splice(flag, 2)[1].split(",").filter(Boolean) : null;
const batchedFlag = args.indexOf("--batched");
const batched = batchedFlag >= 0 && args.splice(batchedFlag, 1).length > 0;
const url = args[0] || process.env.WS_URL || localWebSocketUrl();
const shown = url.replace(/token=[^&]+/, "token=…");

let attempt = 0;
let stopping = false;
let current;

// Resume state. `position` is the change-log position from the last `subscribed` frame,
// moved on by live frames' `log` marks once they are `settleMs` old (the server says how
// long a numbered change may still be on its way); `versions` is the newest version printed
// per product.
let position = null;
let settleMs = 15_000;
const marks = [];
const versions = new Map();

function settle(now = Date.now()) {
  while (marks.length && now - marks[0].at >= settleMs) {
    const { shard, seq } = marks.shift();
    if (position && seq > position[shard]) position[shard] = seq;
  }
}
setInterval(settle, 1_000).unref();

/** Prints a change unless this version was printed already. */
function show(frame) {
  if (frame.log) marks.push({ ...frame.log, at: Date.now() });
  const version = frame.type === "productPhotoChanged" ? `photo${frame.photoVersion}` : frame.version;
  const key = `${frame.type}:${frame.productId}`;
  const held = versions.get(key);
  if (typeof version === "number" && held !== undefined && held >= version) return;
  if (typeof version === "number") versions.set(key, version);
  console.log(describe(frame));
}

function connect() {
  const socket = new WebSocket(url);
  const resumeFrom = position ? position.join(".") : null;
  const subscribe = () =>
    socket.send(
      JSON.stringify({
        action: "subscribe",
        ...(products ? { productIds: products } : {}),
        ...(batched ? { batched: true } : {}),
        ...(resumeFrom ? { after: resumeFrom } : {}),
      }),
    );
  let subscribed = false;
  let resends = 0;
  let replayed = 0;
  socket.on("open", () => {
    attempt = 0;
    console.log(`${new Date().toISOString().slice(11, 23)} connected to ${shown}${resumeFrom ? `, resuming after ${resumeFrom}` : ""}`);
    subscribe();
  });
  socket.on("message", (data) => {
    let event;
    try {
      event = JSON.parse(data.toString());
    } catch {
      console.log(`unreadable frame: ${data}`);
      return;
    }
    // A frame without a type is the gateway's own (throttled or failed): send the subscription again.
    if (!event.type && !subscribed && socket.readyState === WebSocket.OPEN) {
      const delay = Math.random() * Math.min(5_000, 200 * 2 ** resends++);
      console.error(`gateway refused the subscription (${event.message || event.__type}); again in ${Math.round(delay)} ms`);
      setTimeout(() => socket.readyState === WebSocket.OPEN && subscribe(), delay);
      return;
    }
    switch (event.type) {
      case "subscribed":
        subscribed = true;
        position = event.position ? event.position.split(".").map(Number) : null;
        marks.length = 0;
        if (event.settleMs) settleMs = event.settleMs;
        console.log(describe(event) + (resumeFrom ? ` (resumed: ${replayed} missed changes replayed)` : ""));
        break;
      case "batch":
        if (!subscribed) replayed += event.frames.length;
        event.frames.forEach(show);
        break;
      case "productChanged":
      case "productPhotoChanged":
        show(event);
        break;
      case "snapshot":
        for (const p of event.products) versions.set(`productChanged:${p.productId}`, p.version);
        console.log(describe(event));
        break;
      case "error":
        console.log(describe(event));
        // Away too long to replay: take the current state instead.
        if (event.code === "resume_too_far") socket.send(JSON.stringify({ action: "snapshot" }));
        break;
      default:
        console.log(describe(event));
    }
  });
  socket.on("unexpected-response", (_request, response) => {
    console.error(`connect refused: HTTP ${response.statusCode}${response.statusCode === 401 ? " (missing or invalid token)" : ""}`);
  });
  socket.on("error", (err) => console.error(`connection error: ${err.message}`));
  socket.on("close", () => {
    if (stopping) return;
    // Exponential backoff with full jitter, capped at 10 s.
    const delay = Math.random() * Math.min(10_000, 250 * 2 ** attempt++);
    console.error(`disconnected; reconnecting in ${Math.round(delay)} ms`);
    setTimeout(() => {
      current = connect();
    }, delay);
  });
  return socket;
}

current = connect();
process.on("SIGINT", () => {
  stopping = true;
  current.close();
  process.exit(0);
});
