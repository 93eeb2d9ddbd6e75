use std::collections::BTreeSet;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use catalog_core::fakes::{
    product, MemoryConnections, MemoryDeadLetters, MemoryProducts, RecordingPusher,
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
        faults: Default::default(),
    }
}

fn fixture() -> SqsEvent {
    serde_json::from_str(include_str!("../fixtures/sqs-event.json")).unwrap()
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
    c.connections.add(id, 0, i64::MAX).await.unwrap();
    if let Some(ids) = filter {
        let ids: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        c.connections.set_filter(id, Some(&ids)).await.unwrap();
    }
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
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
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
    let logged: Vec<(u64, &str, &str)> = log
        .iter()
        .map(|e| (e.seq, e.event_type.as_str(), e.product_id.as_str()))
        .collect();
    // The redelivered change is logged again (at least once); the poison message is not.
    assert_eq!(
        logged,
        [
            (1, "productChanged", "p-001"),
            (2, "productChanged", "p-002"),
            (3, "productChanged", "p-001")
        ]
    );
    let data: serde_json::Value = serde_json::from_str(&log[0].data).unwrap();
    assert_eq!(data["changeId"], first.change_id.as_str());
    assert_eq!(data["type"], "productChanged");
}
