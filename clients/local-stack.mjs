// Where the local stack is, as scripts/dev prints it: endpoints from .local/outputs.json,
// a token signed with .local/auth-secret (HS256, like catalog_core::auth).
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const endpoint = (process.env.AWS_ENDPOINT_URL || "http://127.0.0.1:4566").replace(/\/$/, "");

function outputs() {
  try {
    return JSON.parse(readFileSync(join(root, ".local/outputs.json"), "utf8"));
  } catch {
    throw new Error("no local stack (.local/outputs.json); start one with scripts/dev, or pass the URL");
  }
}

const b64url = (data) => Buffer.from(data).toString("base64url");

export function localToken(ttlSeconds = 12 * 3600) {
  const secret = readFileSync(join(root, ".local/auth-secret"), "utf8").trim();
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub: process.env.USER || "dev", iss: "live-catalogue", iat: now, exp: now + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${signature}`;
}

export function localWebSocketUrl() {
  const o = outputs();
  return `${endpoint.replace(/^http/, "ws")}/_aws/execute-api/${o.WebSocketApiId}/${o.WebSocketStageName}?token=${localToken()}`;
}

export function localRestUrl() {
  const o = outputs();
  return `${endpoint}/_aws/execute-api/${o.RestApiId}/${o.RestApiStageName}`;
}

/** One line per update, the same for both echo clients. */
export function describe(event) {
  const time = new Date().toISOString().slice(11, 23);
  const money = (cents, currency) => `${(cents / 100).toFixed(2)} ${currency}`;
  switch (event.type) {
    case "productChanged": {
      const p = event.product;
      return `${time} ${p.productId} v${event.version} ${p.name}: price ${money(p.priceCents, p.currency)}` +
        ` (was ${money(event.previous.priceCents, p.currency)}), stock ${p.stock} (was ${event.previous.stock})` +
        ` change ${event.changeId}`;
    }
    case "productPhotoChanged":
      return `${time} ${event.productId} photo v${event.photoVersion}: ${event.thumbUrl} change ${event.changeId}`;
    case "subscribed":
      return `${time} subscribed to ${event.productIds ? event.productIds.join(",") : "every product"}` +
        (event.batched ? " (batched)" : "");
    case "batch":
      return event.frames.map(describe).join("\n");
    case "snapshot":
      return `${time} snapshot part ${event.part}/${event.parts}: ${event.products.length} products`;
    case "error":
      return `${time} error ${event.code}: ${event.message}`;
    default:
      return `${time} ${JSON.stringify(event)}`;
  }
}
