//! Change → client latency on the deployed stack: connects N WebSocket clients,
//! runs the generator until at least M changes were published, and measures, for
//! every change each client receives, receipt time minus the change's `changedAt`
//! (stamped by the generator just before it publishes). Prints one JSON object.
//!
//! Usage: latency-bench [clients=10] [changes=500]   (STACK_OUTPUTS and WS_URL as for the e2e tests)

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::Stack;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let clients: usize = args
        .next()
        .map_or(10, |a| a.parse().expect("clients is a number"));
    let wanted: usize = args
        .next()
        .map_or(500, |a| a.parse().expect("changes is a number"));
    let stack = Stack::load().await;

    // (change id, latency ms) per receipt, from every client.
    let samples: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
    let mut readers = Vec::new();
    for _ in 0..clients {
        let (socket, _) = tokio_tungstenite::connect_async(&stack.ws_url)
            .await
            .expect("connect");
        let (mut sink, mut stream) = socket.split();
        sink.send(Message::text(r#"{"action":"subscribe"}"#))
            .await
            .expect("subscribe");
        let samples = samples.clone();
        readers.push(tokio::spawn(async move {
            let _sink = sink; // keep the connection open
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                let received = chrono::Utc::now();
                let frame: serde_json::Value =
                    serde_json::from_str(text.as_str()).unwrap_or_default();
                if frame["type"] != "productChanged" {
                    continue;
                }
                let changed_at: chrono::DateTime<chrono::Utc> = frame["changedAt"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .expect("changedAt");
                let ms = (received - changed_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                samples
                    .lock()
                    .unwrap()
                    .push((frame["changeId"].as_str().unwrap_or("").to_owned(), ms));
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now();
    let mut published = BTreeSet::new();
    let mut runs = 0;
    while published.len() < wanted {
        for p in stack.run_generator().await {
            published.insert(p.change_id);
        }
        runs += 1;
        eprint!("\r{} / {wanted} changes published", published.len());
    }
    let publish_secs = started.elapsed().as_secs_f64();
    eprintln!();

    let expected = published.len() * clients;
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let samples = samples.lock().unwrap().clone();
    let mut latencies: Vec<f64> = samples
        .iter()
        .filter(|(id, _)| published.contains(id))
        .map(|(_, ms)| *ms)
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let result = serde_json::json!({
        "clients": clients,
        "changes": published.len(),
        "generator_runs": runs,
        "publish_seconds": (publish_secs * 10.0).round() / 10.0,
        "expected_receipts": expected,
        "receipts": latencies.len(),
        "p50_ms": percentile(&latencies, 50.0),
        "p95_ms": percentile(&latencies, 95.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last().copied().unwrap_or(0.0),
    });
    println!("{result}");
    for r in readers {
        r.abort();
    }
}
