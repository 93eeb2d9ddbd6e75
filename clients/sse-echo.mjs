#!/usr/bin/env node
// Prints every live update from the SSE stream on one line. When the stream ends or
// breaks, it reconnects with backoff and resumes with Last-Event-ID, so nothing is missed
// within the stream's retention window.
//
//   node clients/sse-echo.mjs [sse-url] [--products p-001,p-002]
//
// The URL defaults to $SSE_URL, then to the local stream (scripts/dev: http://127.0.0.1:4600/events).
import { describe } from "./local-stack.mjs";

const args = process.argv.slice(2);
const flag = args.indexOf("--products");
const products = flag >= 0 ? args.splice(flag, 2)[1] : null;
const base = new URL(args[0] || process.env.SSE_URL || "http://127.0.0.1:4600/events");
if (products) base.searchParams.set("productIds", products);

let lastEventId = null;
let retryMs = 1000;
let attempt = 0;

/** Feeds text into SSE events: yields {id, event, data} for each complete event. */
function* parse(buffer, state) {
  state.text += buffer;
  let end;
  while ((end = state.text.search(/\r?\n\r?\n/)) >= 0) {
    const block = state.text.slice(0, end);
    state.text = state.text.slice(end).replace(/^\r?\n\r?\n/, "");
    const event = { id: null, event: "message", data: [] };
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) continue; // a comment: heartbeats
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(value);
      else if (field === "id") event.id = value;
      else if (field === "event") event.event = value;
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (event.data.length) yield { ...event, data: event.data.join("\n") };
  }
}

async function stream() {
  const headers = { accept: "text/event-stream" };
  if (lastEventId) headers["last-event-id"] = lastEventId;
  const response = await fetch(base, { headers });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  attempt = 0;
  console.log(`${new Date().toISOString().slice(11, 23)} connected to ${base}${lastEventId ? ` after event ${lastEventId}` : ""}`);
  const decoder = new TextDecoder();
  const state = { text: "" };
  for await (const chunk of response.body) {
    for (const event of parse(decoder.decode(chunk, { stream: true }), state)) {
      if (event.id) lastEventId = event.id;
      if (event.event === "ready") continue; // the session's start is fixed; nothing to print
      let payload;
      try {
        payload = JSON.parse(event.data);
      } catch {
        console.log(`unreadable event ${event.id}: ${event.data}`);
        continue;
      }
      console.log(`#${event.id} ${describe(payload)}`);
    }
  }
}

process.on("SIGINT", () => process.exit(0));
for (;;) {
  try {
    await stream();
    console.error("stream ended; resuming");
  } catch (err) {
    console.error(`stream failed: ${err.message}`);
  }
  const delay = Math.min(30_000, retryMs * 2 ** Math.min(attempt++, 5)) * (0.5 + Math.random() / 2);
  await new Promise((resolve) => setTimeout(resolve, attempt === 1 ? retryMs : delay));
}
