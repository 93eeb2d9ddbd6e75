#!/usr/bin/env node
// Prints every live update from the WebSocket API on one line. Reconnects with backoff
// and subscribes again after each connect.
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

function connect() {
  const socket = new WebSocket(url);
  const subscribe = () =>
    socket.send(
      JSON.stringify({
        action: "subscribe",
        ...(products ? { productIds: products } : {}),
        ...(batched ? { batched: true } : {}),
      }),
    );
  let subscribed = false;
  let resends = 0;
  socket.on("open", () => {
    attempt = 0;
    console.log(`${new Date().toISOString().slice(11, 23)} connected to ${shown}`);
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
    if (event.type === "subscribed") subscribed = true;
    // A frame without a type is the gateway's own (throttled or failed): send the subscription again.
    if (!event.type && !subscribed && socket.readyState === WebSocket.OPEN) {
      const delay = Math.random() * Math.min(5_000, 200 * 2 ** resends++);
      console.error(`gateway refused the subscription (${event.message || event.__type}); again in ${Math.round(delay)} ms`);
      setTimeout(() => socket.readyState === WebSocket.OPEN && subscribe(), delay);
      return;
    }
    console.log(describe(event));
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
