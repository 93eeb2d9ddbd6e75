use std::collections::BTreeSet;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use catalog_core::fakes::{
    product, MemoryConnections, MemoryDeadLetters, MemoryProducts, RecordingPusher,
    RecordingRedelivery,
};
use catalog_core::generate::plan_change;
use catalog_core::generate::ProductState;
use catalog_core::ProductChanged;

use super::*;

type TestConsumer = Consumer<
    MemoryProducts,
    MemoryConnections,
    RecordingPusher,
    MemoryDeadLetters,
    catalog_core::fakes::MemoryChangeLog,
>;

fn consumer() -> TestConsumer {
    Consumer {
        products: MemoryProducts::with([
            product("p-001", 1299, 40),
            product("p-002", 500, 3),
            product("p-003", 999, 0),
        ]),
        connections: MemoryConnections::default(),
        pusher: RecordingPusher::default(),
        dead_letters: MemoryDeadLetters::default(),
        change_log: Default::default(),
        push_concurrency: 4,
        group_concurrency: 10,
        connection_view: Default::default(),
        redelivery: Box::new(RecordingRedelivery::default()),
        retry_base: std::time::Duration::from_secs(1),
        retry_max: std::time::Duration::from_secs(5),
        faults: Default::default(),
    }
}

/// The message ids a batch response returns to the queue.
fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

fn fixture() -> SqsEvent {
    events("mixed-batch")
}

fn events(case: &str) -> SqsEvent {
    serde_json::from_str(&catalog_core::event_fixtures::load("consumer", case)).unwrap()
}

/// Every fixture in `events/consumer/` through the handler: what each case is named for happens.
#[tokio::test]
async fn each_consumer_event_fixture_does_what_its_name_says() {
    // (case, applied, duplicate, stale, photos, malformed)
    let expected = [
        ("change", (1, 0, 0, 0, 0)),
        ("duplicate", (1, 1, 0, 0, 0)),
        ("stale-version", (1, 0, 1, 0, 0)),
        ("poison", (0, 0, 0, 0, 1)),
        ("photo-changed", (0, 0, 0, 1, 0)),
        ("mixed-batch", (2, 0, 0, 0, 1)),
    ];
    catalog_core::event_fixtures::assert_covered(
        "consumer",
        expected.iter().map(|(case, _)| *case),
    );
    for (case, counts) in expected {
        let c = consumer();
        connect(&c, "all", None).await;
        let (response, got) = c.handle_batch(events(case)).await;
        assert!(response.batch_item_failures.is_empty(), "{case}");
        assert_eq!(
            (
                got.applied,
                got.duplicate,
                got.stale,
                got.photos,
                got.malformed
            ),
            counts,
            "{case}"
        );
    }
}

fn event(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m-{i}"));
        m.body = Some(body.clone());
        event.records.push(m);
    }
    event
}

fn change(id: &str, version: u64, price: i64, stock: i64) -> ProductChanged {
    let mut rng = catalog_core::generate::Rng::with_seed(version);
    let state = ProductState {
        product_id: id.into(),
        values: catalog_core::StockAndPrice {
            price_cents: price,
            stock,
        },
        applied_version: version - 1,
        published_version: 0,
    };
    plan_change(
        &mut rng,
        &state,
        format!("change-{id}-{version}"),
        chrono::Utc::now(),
    )
}

async fn connect(c: &TestConsumer, id: &str, filter: Option<&[&str]>) {
    subscribe(c, id, filter, false).await;
}

async fn subscribe(c: &TestConsumer, id: &str, filter: Option<&[&str]>, batched: bool) {
    c.connections.add(id, 0, i64::MAX).await.unwrap();
    let ids: Option<BTreeSet<String>> =
        filter.map(|ids| ids.iter().map(|s| s.to_string()).collect());
    assert!(c
        .connections
        .subscribe(id, ids.as_ref(), batched)
        .await
        .unwrap());
}

#[tokio::test]
async fn real_sqs_event_applies_good_messages_and_dead_letters_the_malformed_one() {
    let c = consumer();
    connect(&c, "all", None).await;
    let (response, counts) = c.handle_batch(fixture()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "the poison message is dealt with, not retried"
    );
    let letters = c.dead_letters.letters.lock().unwrap().clone();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].message_id,
        "2e1424d4-f796-459a-8184-9c92662be6da"
    );
    assert_eq!(letters[0].body, "{this is not json");
    assert!(
        letters[0].reason.contains("not a ProductChanged event"),
        "{}",
        letters[0].reason
    );
    assert_eq!(
        (counts.applied, counts.malformed, counts.pushes_sent),
        (2, 1, 2)
    );
    let p1 = c.products.get("p-001").unwrap();
    assert_eq!((p1.price_cents, p1.stock, p1.version), (1349, 38, 1));
    // The SNS-envelope message (no raw delivery) is understood too.
    assert_eq!(c.products.get("p-002").unwrap().stock, 1);
    let frames = c.pusher.frames("all");
    assert_eq!(frames[0]["type"], "productChanged");
    assert_eq!(frames[0]["product"]["priceCents"], 1349);
    assert_eq!(frames[0]["version"], 1);
}

#[tokio::test]
async fn pushes_respect_subscriptions() {
    let c = consumer();
    connect(&c, "all", None).await;
    connect(&c, "only-2", Some(&["p-002"])).await;
    let bodies = [
        change("p-001", 1, 1299, 40).to_json(),
        change("p-002", 1, 500, 3).to_json(),
    ];
    let (response, _) = c.handle_batch(event(&bodies)).await;
    assert!(response.batch_item_failures.is_empty());
    let product_ids = |id: &str| -> Vec<String> {
        c.pusher
            .frames(id)
            .iter()
            .map(|f| f["productId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(product_ids("all"), ["p-001", "p-002"]);
    assert_eq!(product_ids("only-2"), ["p-002"]);
}

#[tokio::test]
async fn duplicates_are_pushed_again_but_stale_changes_are_dropped() {
    let c = consumer();
    connect(&c, "all", None).await;
    let v1 = change("p-001", 1, 1299, 40);
    let v2 = change("p-001", 2, v1.current.price_cents, v1.current.stock);
    let bodies = [v1.to_json(), v2.to_json(), v2.to_json(), v1.to_json()];
    let (response, counts) = c.handle_batch(event(&bodies)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.applied, counts.duplicate, counts.stale), (2, 1, 1));
    let stored = c.products.get("p-001").unwrap();
    assert_eq!(
        (stored.version, stored.price_cents, stored.stock),
        (2, v2.current.price_cents, v2.current.stock)
    );
    let versions: Vec<u64> = c
        .pusher
        .frames("all")
        .iter()
        .map(|f| f["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 2], "the stale v1 is never pushed after v2");
}

#[tokio::test]
async fn gone_connections_are_removed_and_do_not_fail_the_message() {
    let c = consumer();
    connect(&c, "alive", None).await;
    connect(&c, "gone", None).await;
    c.pusher.gone.lock().unwrap().insert("gone".into());
    let bodies = [
        change("p-001", 1, 1299, 40).to_json(),
        change("p-002", 1, 500, 3).to_json(),
    ];
    let (response, counts) = c.handle_batch(event(&bodies)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(c.connections.ids(), ["alive"]);
    assert_eq!(
        (counts.pushes_gone, counts.pushes_sent),
        (1, 2),
        "the gone connection is tried once, then forgotten"
    );
}

#[tokio::test]
async fn a_failed_push_returns_the_message_and_a_retry_pushes_again() {
    let c = consumer();
    connect(&c, "flaky", None).await;
    c.pusher.failing.lock().unwrap().insert("flaky".into());
    let body = [change("p-001", 1, 1299, 40).to_json()];
    let (response, _) = c.handle_batch(event(&body)).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    c.pusher.failing.lock().unwrap().clear();
    let (response, counts) = c.handle_batch(event(&body)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.duplicate, counts.pushes_sent), (1, 1));
    assert_eq!(c.pusher.frames("flaky")[0]["version"], 1);
}

#[tokio::test]
async fn store_failures_are_retried_and_poison_is_dead_lettered_with_its_reason() {
    let c = consumer();
    c.products.failing.lock().unwrap().insert("p-002".into());
    let mut impossible = change("p-003", 1, 999, 0);
    impossible.current.stock = -4;
    let unknown_type = change("p-001", 1, 1299, 40)
        .to_json()
        .replace("ProductChanged", "ProductDeleted");
    let bodies = [
        change("p-001", 1, 1299, 40).to_json(),
        change("p-002", 1, 500, 3).to_json(),
        impossible.to_json(),
        unknown_type,
        change("p-404", 1, 100, 1).to_json(),
    ];
    let (response, counts) = c.handle_batch(event(&bodies)).await;
    let failed = failed_ids(&response);
    assert_eq!(
        failed,
        ["m-1", "m-4"],
        "the store outage and the unknown product are retried"
    );
    assert_eq!((counts.applied, counts.malformed, counts.failed), (1, 2, 2));
    let reasons: Vec<String> = c
        .dead_letters
        .letters
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.reason.clone())
        .collect();
    assert!(reasons[0].contains("stock -4 is negative"), "{reasons:?}");
    assert!(
        reasons[1].contains("unknown event type \"ProductDeleted\""),
        "{reasons:?}"
    );
    assert_eq!(c.products.get("p-003").unwrap().stock, 0);
}

#[tokio::test]
async fn a_poison_message_that_cannot_be_dead_lettered_is_retried() {
    let c = consumer();
    c.dead_letters
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (response, counts) = c.handle_batch(event(&["garbage".to_owned()])).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(counts.malformed, 1);
}

#[tokio::test]
async fn a_photo_change_is_pushed_to_its_subscribers_without_touching_the_product() {
    let c = consumer();
    connect(&c, "p1-watcher", Some(&["p-001"])).await;
    connect(&c, "p2-watcher", Some(&["p-002"])).await;
    let photo = catalog_core::ProductPhotoChanged {
        event_type: catalog_core::change::PRODUCT_PHOTO_CHANGED.into(),
        change_id: "job-1".into(),
        product_id: "p-001".into(),
        photo_version: 3,
        full_url: "http://127.0.0.1:4566/photos/photos/original/p-001/v3.png?sig".into(),
        thumb_url: "http://127.0.0.1:4566/photos/photos/thumb/p-001/v3.png?sig".into(),
        urls_expire_at: chrono::Utc::now(),
        changed_at: chrono::Utc::now(),
    };
    let before = c.products.all_products().await.unwrap();
    let (response, counts) = c.handle_batch(event(&[photo.to_json()])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (counts.photos, counts.pushes_sent, counts.malformed),
        (1, 1, 0)
    );
    let frames = c.pusher.frames("p1-watcher");
    assert_eq!(frames[0]["type"], "productPhotoChanged");
    assert_eq!(frames[0]["photoVersion"], 3);
    assert_eq!(frames[0]["thumbUrl"], photo.thumb_url.as_str());
    assert!(c.pusher.frames("p2-watcher").is_empty());
    assert_eq!(c.products.all_products().await.unwrap(), before);
}

#[tokio::test]
async fn every_pushed_event_is_logged_in_order_with_its_frame() {
    let c = consumer();
    let first = change("p-001", 1, 1299, 40);
    let second = change("p-002", 1, 500, 3);
    c.handle_batch(event(&[
        first.to_json(),
        "{bad".into(),
        second.to_json(),
        first.to_json(),
    ]))
    .await;
    let log = c.change_log.entries.lock().unwrap().clone();
    let logged = |product: &str| -> Vec<(u64, &str)> {
        log.iter()
            .filter(|e| e.product_id == product)
            .map(|e| (e.seq, e.event_type.as_str()))
            .collect()
    };
    // The redelivered change is logged again (at least once), after the first, in its
    // product's shard; the poison message is not logged.
    assert_eq!(log.len(), 3);
    let p1 = logged("p-001");
    assert_eq!(p1.len(), 2);
    assert!(p1[0].0 < p1[1].0, "{p1:?}");
    assert_eq!(logged("p-002").len(), 1);
    let log: Vec<_> = log
        .into_iter()
        .filter(|e| e.product_id == "p-001")
        .collect();
    let data: serde_json::Value = serde_json::from_str(&log[0].data).unwrap();
    assert_eq!(data["changeId"], first.change_id.as_str());
    assert_eq!(data["type"], "productChanged");
}

/// A batch as a FIFO queue delivers it: each record carries its product as message group.
fn grouped_event(changes: &[&ProductChanged]) -> SqsEvent {
    let mut event = event(&changes.iter().map(|c| c.to_json()).collect::<Vec<_>>());
    for (record, change) in event.records.iter_mut().zip(changes) {
        record
            .attributes
            .insert("MessageGroupId".into(), change.product_id.clone());
    }
    event
}

/// Records the order of pushes per product and how many ran at once.
#[derive(Default)]
struct OverlapPusher {
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    versions: std::sync::Mutex<Vec<(String, u64)>>,
}

#[async_trait::async_trait]
impl Pusher for OverlapPusher {
    async fn push(&self, _connection_id: &str, payload: &str) -> Result<(), PushError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.in_flight.fetch_add(1, SeqCst) + 1;
        self.most_in_flight.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let frame: serde_json::Value = serde_json::from_str(payload).unwrap();
        self.versions.lock().unwrap().push((
            frame["productId"].as_str().unwrap().to_owned(),
            frame["version"].as_u64().unwrap(),
        ));
        self.in_flight.fetch_sub(1, SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_runs_its_products_concurrently_and_each_products_changes_in_order() {
    let ids: Vec<String> = (1..=5).map(|i| format!("p-{i:03}")).collect();
    let c = Consumer {
        products: MemoryProducts::with(ids.iter().map(|id| product(id, 100, 1))),
        connections: MemoryConnections::default(),
        pusher: OverlapPusher::default(),
        dead_letters: MemoryDeadLetters::default(),
        change_log: catalog_core::fakes::MemoryChangeLog::default(),
        push_concurrency: 4,
        group_concurrency: 10,
        connection_view: Default::default(),
        redelivery: Box::new(RecordingRedelivery::default()),
        retry_base: std::time::Duration::from_secs(1),
        retry_max: std::time::Duration::from_secs(5),
        faults: Default::default(),
    };
    c.connections.add("everything", 0, i64::MAX).await.unwrap();
    // Two changes of each of five products, interleaved as the queue delivers them.
    let changes: Vec<ProductChanged> = (1..=2)
        .flat_map(|v| ids.iter().map(move |id| change(id, v, 100, 1)))
        .collect();
    let (response, counts) = c
        .handle_batch(grouped_event(&changes.iter().collect::<Vec<_>>()))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(counts.applied, 10);
    let most = c
        .pusher
        .most_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        most >= 5,
        "the five products ran at once (at most {most} did)"
    );
    let versions = c.pusher.versions.lock().unwrap().clone();
    for id in &ids {
        let mine: Vec<u64> = versions
            .iter()
            .filter(|(p, _)| p == id)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(mine, [1, 2], "{id}: its changes in order");
    }
}

#[tokio::test]
async fn a_failed_change_returns_with_the_rest_of_its_product_and_other_products_go_on() {
    let c = consumer();
    c.products.failing.lock().unwrap().insert("p-001".into());
    let first = change("p-001", 1, 1299, 40);
    let second = change("p-001", 2, 1299, 41);
    let other = change("p-002", 1, 500, 3);
    let (response, counts) = c
        .handle_batch(grouped_event(&[&first, &other, &second]))
        .await;
    let failed = failed_ids(&response);
    assert_eq!(
        failed,
        ["m-0", "m-2"],
        "p-001's change and the one after it return"
    );
    assert_eq!(
        counts.failed, 1,
        "the second change of p-001 was not attempted"
    );
    assert_eq!(
        (counts.applied, c.products.get("p-002").unwrap().version),
        (1, 1)
    );
}

#[tokio::test]
async fn a_subscription_reaches_the_next_change_and_only_moved_shards_are_read_again() {
    let c = consumer();
    connect(&c, "early", None).await;
    c.handle_batch(grouped_event(&[&change("p-001", 1, 1299, 40)]))
        .await;
    let reads = || {
        c.connections
            .shard_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let after_first = reads();
    assert_eq!(
        after_first,
        c.connections.shards(),
        "the first batch reads every shard once"
    );
    c.handle_batch(grouped_event(&[&change("p-001", 2, 1299, 41)]))
        .await;
    assert_eq!(reads(), after_first, "no revision moved: nothing re-read");

    // A subscription written before a change is numbered is in the list that change goes to.
    connect(&c, "late", None).await;
    c.handle_batch(grouped_event(&[&change("p-001", 3, 1299, 42)]))
        .await;
    assert_eq!(c.pusher.frames("early").len(), 3);
    assert_eq!(c.pusher.frames("late").len(), 1, "the very next change");
    assert_eq!(reads(), after_first + 1, "only the late connection's shard");
}

#[tokio::test]
async fn pushed_frames_carry_their_change_log_entry() {
    let c = consumer();
    connect(&c, "all", None).await;
    c.handle_batch(grouped_event(&[
        &change("p-001", 1, 1299, 40),
        &change("p-001", 2, 1299, 41),
    ]))
    .await;
    let frames = c.pusher.frames("all");
    let marks: Vec<(usize, u64)> = frames
        .iter()
        .map(|v| {
            (
                v["log"]["shard"].as_u64().unwrap() as usize,
                v["log"]["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let shard = catalog_core::ports::shard_of("p-001", c.change_log.shards());
    assert_eq!(marks, [(shard, 1), (shard, 2)]);
    let logged = c.change_log.entries.lock().unwrap().clone();
    assert_eq!(logged.len(), 2);
    let logged_frame: serde_json::Value = serde_json::from_str(&logged[1].data).unwrap();
    assert_eq!(logged_frame, frames[1], "the log holds the frame as pushed");
}

#[tokio::test]
async fn a_410_from_a_connection_still_opening_skips_it_without_removing_it() {
    let c = consumer();
    let now = chrono::Utc::now().timestamp_millis();
    c.connections.add("opening", now, i64::MAX).await.unwrap();
    c.pusher.gone.lock().unwrap().insert("opening".into());
    let (response, counts) = c
        .handle_batch(grouped_event(&[&change("p-001", 1, 1299, 40)]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.pushes_not_open, counts.pushes_gone), (1, 0));
    assert!(c.connections.ids().contains(&"opening".to_owned()));

    // Once open it receives the next change.
    c.pusher.gone.lock().unwrap().clear();
    c.handle_batch(grouped_event(&[&change("p-001", 2, 1299, 41)]))
        .await;
    assert_eq!(c.pusher.frames("opening").len(), 1);
}

#[tokio::test]
async fn a_failed_push_returns_its_records_after_a_short_growing_delay() {
    let redelivery = RecordingRedelivery::default();
    let mut c = consumer();
    c.redelivery = Box::new(redelivery.clone());
    connect(&c, "all", None).await;
    c.pusher.failing.lock().unwrap().insert("all".into());
    let mut event = grouped_event(&[&change("p-001", 1, 1299, 40), &change("p-001", 2, 1299, 41)]);
    for (i, record) in event.records.iter_mut().enumerate() {
        record.receipt_handle = Some(format!("receipt-{i}"));
        record
            .attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
    }
    let (response, _) = c.handle_batch(event).await;
    assert_eq!(failed_ids(&response), ["m-0", "m-1"]);
    let asked = redelivery.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            ("receipt-0".to_owned(), std::time::Duration::from_secs(4)),
            ("receipt-1".to_owned(), std::time::Duration::from_secs(4)),
        ]
    );
}

#[tokio::test]
async fn a_gone_connection_is_dropped_from_the_cached_list() {
    let c = consumer();
    connect(&c, "stays", None).await;
    connect(&c, "leaves", None).await;
    c.pusher.gone.lock().unwrap().insert("leaves".into());
    let (_, first) = c
        .handle_batch(grouped_event(&[
            &change("p-001", 1, 1299, 40),
            &change("p-002", 1, 500, 3),
        ]))
        .await;
    assert_eq!(first.pushes_gone, 1, "410 once, not once per change");
    assert!(!c.connections.ids().contains(&"leaves".to_owned()));
    let (_, second) = c
        .handle_batch(grouped_event(&[&change("p-001", 2, 1299, 41)]))
        .await;
    assert_eq!((second.pushes_gone, second.pushes_sent), (0, 1));
}

/// The `(productId, version)` of each change in a connection's frames, and how many frames.
fn batched_changes(c: &TestConsumer, id: &str) -> (Vec<(String, u64)>, usize) {
    let frames = c.pusher.frames(id);
    let changes = frames
        .iter()
        .flat_map(|f| {
            assert_eq!(f["type"], "batch", "{f}");
            f["frames"].as_array().unwrap().clone()
        })
        .map(|f| {
            (
                f["productId"].as_str().unwrap().to_owned(),
                f["version"].as_u64().unwrap(),
            )
        })
        .collect();
    (changes, frames.len())
}

#[tokio::test]
async fn a_batched_connection_gets_one_frame_per_batch_with_the_changes_it_wants_in_order() {
    let c = consumer();
    connect(&c, "per-change", None).await;
    subscribe(&c, "batched", None, true).await;
    subscribe(&c, "batched-p2", Some(&["p-002"]), true).await;
    subscribe(&c, "batched-p3", Some(&["p-003"]), true).await;
    let p1v1 = change("p-001", 1, 1299, 40);
    let p1v2 = change("p-001", 2, p1v1.current.price_cents, p1v1.current.stock);
    let p2v1 = change("p-002", 1, 500, 3);
    let (response, counts) = c.handle_batch(grouped_event(&[&p1v1, &p2v1, &p1v2])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        c.pusher.frames("per-change").len(),
        3,
        "one frame per change"
    );
    let (changes, frames) = batched_changes(&c, "batched");
    assert_eq!(frames, 1, "one frame for the whole batch");
    let p1: Vec<u64> = changes
        .iter()
        .filter(|(p, _)| p == "p-001")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(p1, [1, 2], "a product's changes in version order");
    assert_eq!(changes.len(), 3);
    assert_eq!(
        batched_changes(&c, "batched-p2"),
        (vec![("p-002".to_owned(), 1)], 1)
    );
    assert!(
        c.pusher.frames("batched-p3").is_empty(),
        "nothing it wants, no frame"
    );
    assert_eq!(counts.pushes_sent, 3 + 2);
}

#[tokio::test]
async fn a_failed_batched_push_returns_its_changes_and_the_rest_of_their_products() {
    let c = consumer();
    subscribe(&c, "batched-p1", Some(&["p-001"]), true).await;
    c.pusher.failing.lock().unwrap().insert("batched-p1".into());
    let p1v1 = change("p-001", 1, 1299, 40);
    let p2v1 = change("p-002", 1, 500, 3);
    let p1v2 = change("p-001", 2, p1v1.current.price_cents, p1v1.current.stock);
    let (response, counts) = c.handle_batch(grouped_event(&[&p1v1, &p2v1, &p1v2])).await;
    assert_eq!(
        failed_ids(&response),
        ["m-0", "m-2"],
        "p-001's changes return; p-002's is done"
    );
    assert_eq!((counts.pushes_failed, counts.failed), (1, 2));
    // The redelivery is a duplicate of the stored state and reaches the client.
    c.pusher.failing.lock().unwrap().clear();
    let (response, counts) = c.handle_batch(grouped_event(&[&p1v1, &p1v2])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        counts.duplicate, 1,
        "v1 is older than stored v2: dropped; v2 pushed again"
    );
    let (changes, _) = batched_changes(&c, "batched-p1");
    assert_eq!(changes, [("p-001".to_owned(), 2)]);
}

#[tokio::test]
async fn a_gone_batched_connection_is_removed() {
    let c = consumer();
    subscribe(&c, "batched", None, true).await;
    c.pusher.gone.lock().unwrap().insert("batched".into());
    let (response, counts) = c
        .handle_batch(grouped_event(&[
            &change("p-001", 1, 1299, 40),
            &change("p-002", 1, 500, 3),
        ]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(counts.pushes_gone, 1);
    assert!(c.connections.ids().is_empty());
}
