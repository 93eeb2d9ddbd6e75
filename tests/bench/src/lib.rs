//! What the in-process benchmarks share: SQS batches of real change bodies, the consumer
//! wired to in-memory fakes, and the statistics they print.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use catalog_core::fakes::{
    product, MemoryChangeLog, MemoryConnections, MemoryDeadLetters, MemoryProducts,
};
use catalog_core::ports::{PushError, Pusher};
use catalog_core::{ProductChanged, StockAndPrice};
use consumer::Consumer;

/// Counts pushes and keeps nothing, so a long run measures the handler, not the fake.
#[derive(Default)]
pub struct CountingPusher {
    pub pushes: AtomicUsize,
}

#[async_trait]
impl Pusher for CountingPusher {
    async fn push(&self, _connection_id: &str, _payload: &str) -> Result<(), PushError> {
        self.pushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

pub type BenchConsumer<U> =
    Consumer<MemoryProducts, MemoryConnections, U, MemoryDeadLetters, MemoryChangeLog>;

pub fn product_id(i: usize) -> String {
    format!("p-{i:04}")
}

/// A consumer over `products` products and `connections` clients subscribed to everything,
/// configured as the template configures it (the connection list re-read only when a
/// shard's revision moves).
pub async fn consumer_with<U: Pusher>(
    products: usize,
    connections: usize,
    pusher: U,
    push_concurrency: usize,
) -> BenchConsumer<U> {
    let consumer = Consumer {
        products: MemoryProducts::with((0..products).map(|i| product(&product_id(i), 1000, 10))),
        connections: MemoryConnections::default(),
        pusher,
        dead_letters: MemoryDeadLetters::default(),
        change_log: MemoryChangeLog::default(),
        push_concurrency,
        group_concurrency: 10,
        connection_view: Default::default(),
        redelivery: Box::new(catalog_core::fakes::RecordingRedelivery::default()),
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(5),
        faults: Default::default(),
    };
    for c in 0..connections {
        use catalog_core::ports::ConnectionStore;
        consumer
            .connections
            .add(&format!("conn-{c:05}"), 0, i64::MAX)
            .await
            .expect("add connection");
    }
    consumer
}

/// `batches` SQS batches of `batch_size` changes, each batch to distinct products (as a
/// FIFO queue grouped by product delivers them), versions increasing per product.
pub fn batches(products: usize, batches: usize, batch_size: usize) -> Vec<SqsEvent> {
    let mut versions = vec![0u64; products];
    let mut next = 0usize;
    (0..batches)
        .map(|b| {
            let mut event = SqsEvent::default();
            for i in 0..batch_size {
                let p = next % products;
                next += 1;
                versions[p] += 1;
                let change = ProductChanged {
                    event_type: "ProductChanged".into(),
                    change_id: format!("bench-{b}-{i}"),
                    product_id: product_id(p),
                    version: versions[p],
                    previous: StockAndPrice {
                        price_cents: 1000,
                        stock: 10,
                    },
                    current: StockAndPrice {
                        price_cents: 1000 + versions[p] as i64,
                        stock: 10,
                    },
                    changed_at: chrono::Utc::now(),
                };
                let mut message = SqsMessage::default();
                message.message_id = Some(format!("m-{b}-{i}"));
                message.body = Some(change.to_json());
                message
                    .attributes
                    .insert("MessageGroupId".into(), product_id(p));
                event.records.push(message);
            }
            event
        })
        .collect()
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(values, 50.0)
}

/// This process's peak resident memory in MB (VmHWM), on Linux.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time this process has used so far (user and system), in ms.
pub fn process_cpu_ms() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given and touches nothing else.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}
