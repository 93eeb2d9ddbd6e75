//! The consumer's `handle_batch` against in-memory fakes, on one core (a current-thread
//! runtime): changes per second with 10 and with 1,000 connected clients subscribed to
//! everything. Each change is applied, logged and pushed to every client. Prints JSON.
//!
//! Usage: handler-bench [changes=20000] [runs=5]

use std::sync::atomic::Ordering;
use std::time::Instant;

use bench::{batches, consumer_with, median, CountingPusher};

const PRODUCTS: usize = 1000;

fn main() {
    let mut args = std::env::args().skip(1);
    let changes: usize = args.next().map_or(20_000, |a| a.parse().expect("changes"));
    let runs: usize = args.next().map_or(5, |a| a.parse().expect("runs"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut report = serde_json::Map::new();
    for connections in [10usize, 1000] {
        // Fewer changes with many clients: each change is 1,000 pushes.
        let changes = if connections > 100 {
            changes / 20
        } else {
            changes
        };
        let mut rates = Vec::new();
        let mut pushes_per_s = Vec::new();
        for _ in 0..runs {
            let (rate, pushes) = runtime.block_on(async {
                let consumer =
                    consumer_with(PRODUCTS, connections, CountingPusher::default(), 16).await;
                let work = batches(PRODUCTS, changes / 10, 10);
                let started = Instant::now();
                for batch in work {
                    let (response, _) = consumer.handle_batch(batch).await;
                    assert!(response.batch_item_failures.is_empty());
                }
                let seconds = started.elapsed().as_secs_f64();
                let pushes = consumer.pusher.pushes.load(Ordering::Relaxed);
                assert_eq!(
                    pushes,
                    changes * connections,
                    "every change reached every client"
                );
                (changes as f64 / seconds, pushes as f64 / seconds)
            });
            rates.push(rate);
            pushes_per_s.push(pushes);
        }
        report.insert(
            format!("connections_{connections}"),
            serde_json::json!({
                "connections": connections,
                "changes_per_run": changes,
                "runs": runs,
                "changes_per_s_median": median(&mut rates).round(),
                "changes_per_s_min": rates.first().copied().unwrap_or_default().round(),
                "changes_per_s_max": rates.last().copied().unwrap_or_default().round(),
                "pushes_per_s_median": median(&mut pushes_per_s).round(),
            }),
        );
    }
    println!("{}", serde_json::Value::Object(report));
}
