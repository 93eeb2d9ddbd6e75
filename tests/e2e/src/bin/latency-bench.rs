//! Change → client latency on the deployed stack. Connects N WebSocket clients subscribed
//! to everything, publishes valid changes straight to the SNS topic at a fixed rate (as any
//! writer of the catalogue would), and measures, for every change each client receives,
//! receipt time minus the change's `changedAt` (stamped just before it is published).
//! Prints one JSON object per run.
//!
//!   latency-bench burst  [clients=10] [changes=500] [rate=50]
//!   latency-bench steady [clients=10] [seconds=60] [rates=25,50,100,150,200,300]
//!       runs each rate for `seconds` and reports the highest whose p99 stayed ≤ 500 ms
//!       with nothing lost
//!
//! FRAMES=batched subscribes the clients with `"batched": true` (one `batch` frame per
//! consumer batch) instead of one frame per change.
//! STACK_OUTPUTS, WS_URL and AUTH_TOKEN_SECRET as for the e2e tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use catalog_core::{Product, StockAndPrice};
use e2e::{change_of, percentile, Stack, WsClient};

async fn clients(stack: &Stack, count: usize, batched: bool) -> Vec<WsClient> {
    let mut clients = Vec::new();
    for _ in 0..count {
        clients.push(WsClient::subscribed_as(&stack.ws_url, None, batched).await);
    }
    clients
}

/// Latency of every `productChanged` frame the clients received after their first `seen`
/// frames: (change id, receipt minus `changedAt` in ms).
fn receipts(clients: &[WsClient], seen: &[usize]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for (client, &seen) in clients.iter().zip(seen) {
        for (frame, received) in client.frames_since(seen) {
            if frame["type"] != "productChanged" {
                continue;
            }
            let changed_at: chrono::DateTime<chrono::Utc> = frame["changedAt"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("changedAt");
            let ms = (received - changed_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            out.push((frame["changeId"].as_str().unwrap_or("").to_owned(), ms));
        }
    }
    out
}

/// Publishes `count` changes at `rate` per second, round-robin over the catalogue, each one
/// version past the last; returns their change ids and how long publishing took.
async fn publish_at_rate(
    stack: &Stack,
    products: &mut BTreeMap<String, Product>,
    count: usize,
    rate: f64,
) -> (BTreeSet<String>, f64) {
    let ids: Vec<String> = products.keys().cloned().collect();
    let started = Instant::now();
    let mut published = BTreeSet::new();
    let mut sends = Vec::new();
    for i in 0..count {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let product = products.get_mut(&ids[i % ids.len()]).expect("product");
        let current = StockAndPrice {
            price_cents: product.price_cents + 1,
            stock: product.stock,
        };
        let change = change_of(product, product.version + 1, current);
        product.version = change.version;
        product.price_cents = current.price_cents;
        published.insert(change.change_id.clone());
        // Published concurrently so a slow publish does not delay the next one.
        let sns = stack.sns.clone();
        let topic = stack.output("ChangesTopicArn").to_owned();
        sends.push(tokio::spawn(async move {
            sns.publish()
                .topic_arn(topic)
                .message(change.to_json())
                .message_group_id(&change.product_id)
                .message_deduplication_id(&change.change_id)
                .send()
                .await
                .expect("SNS publish");
        }));
    }
    for send in sends {
        send.await.expect("publish task");
    }
    (published, started.elapsed().as_secs_f64())
}

async fn catalogue(stack: &Stack) -> BTreeMap<String, Product> {
    let mut products = BTreeMap::new();
    for i in 1..=60 {
        let id = format!("p-{i:03}");
        products.insert(id.clone(), stack.product(&id).await);
    }
    products
}

/// One run at `rate`: publishes, waits for every receipt (or 60 s), returns the figures.
async fn run(
    stack: &Stack,
    clients: &[WsClient],
    products: &mut BTreeMap<String, Product>,
    count: usize,
    rate: f64,
) -> serde_json::Value {
    let seen: Vec<usize> = clients.iter().map(|c| c.frames().len()).collect();
    let (published, publish_secs) = publish_at_rate(stack, products, count, rate).await;
    let expected = published.len() * clients.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies: Vec<f64> = loop {
        let got: Vec<f64> = receipts(clients, &seen)
            .into_iter()
            .filter(|(id, _)| published.contains(id))
            .map(|(_, ms)| ms)
            .collect();
        if got.len() >= expected || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    latencies.sort_by(f64::total_cmp);
    serde_json::json!({
        "clients": clients.len(),
        "changes": published.len(),
        "rate_per_s": rate,
        "publish_seconds": (publish_secs * 10.0).round() / 10.0,
        "expected_receipts": expected,
        "receipts": latencies.len(),
        "lost": expected.saturating_sub(latencies.len()),
        "p50_ms": percentile(&latencies, 50.0),
        "p95_ms": percentile(&latencies, 95.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().copied().unwrap_or(0.0),
    })
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("burst");
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.to_owned());
    let client_count: usize = arg(1, "10").parse().expect("clients is a number");
    let frames = std::env::var("FRAMES").unwrap_or_else(|_| "per-change".to_owned());
    let batched = match frames.as_str() {
        "per-change" => false,
        "batched" => true,
        other => panic!("FRAMES={other:?}: per-change or batched"),
    };
    let stack = Stack::load().await;
    let clients = clients(&stack, client_count, batched).await;
    let mut products = catalogue(&stack).await;
    match mode {
        "burst" => {
            let count: usize = arg(2, "500").parse().expect("changes is a number");
            let rate: f64 = arg(3, "50").parse().expect("rate is a number");
            let mut result = run(&stack, &clients, &mut products, count, rate).await;
            result["frames"] = frames.into();
            println!("{result}");
        }
        "steady" => {
            let seconds: f64 = arg(2, "60").parse().expect("seconds is a number");
            let rates: Vec<f64> = arg(3, "25,50,100,150,200,300")
                .split(',')
                .map(|r| r.parse().expect("a rate"))
                .collect();
            let mut runs = Vec::new();
            let mut best: Option<f64> = None;
            for rate in rates {
                let count = (rate * seconds).round() as usize;
                let result = run(&stack, &clients, &mut products, count, rate).await;
                eprintln!("steady {rate}/s: {result}");
                let held =
                    result["lost"] == 0 && result["p99_ms"].as_f64().is_some_and(|p| p <= 500.0);
                runs.push(result);
                if !held {
                    break;
                }
                best = Some(rate);
                stack
                    .wait_for_drained_changes_queue(Duration::from_secs(120))
                    .await;
            }
            println!(
                "{}",
                serde_json::json!({"frames": frames, "seconds": seconds, "highest_rate_p99_le_500ms": best, "runs": runs})
            );
        }
        other => panic!("unknown mode {other:?}: burst or steady"),
    }
    for client in clients {
        client.abandon();
    }
}
