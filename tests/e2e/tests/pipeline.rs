//! The whole path on the emulator: generator → SNS → SQS → consumer → DynamoDB → WebSocket clients.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use catalog_core::StockAndPrice;
use e2e::{change_of, eventually, versions_by_product, Published, Stack, WsClient};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn subset() -> BTreeSet<String> {
    (1..=25).map(|i| format!("p-{i:03}")).collect()
}

fn change_ids(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["changeId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn clients_receive_exactly_their_changes_in_version_order() {
    let stack = Stack::load().await;

    let earlier: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
    let everything = WsClient::connect(&stack.ws_url).await;
    everything.send(r#"{"action":"subscribe"}"#);
    everything
        .wait_for("subscribe ack", WAIT, |f| {
            f.iter().any(|f| f["type"] == "subscribed")
        })
        .await;

    let before: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
    let narrow = WsClient::connect(&stack.ws_url).await;
    narrow.send(serde_json::json!({"action": "subscribe", "productIds": subset()}).to_string());
    narrow
        .wait_for("subscribe ack", WAIT, |f| {
            f.iter().any(|f| f["type"] == "subscribed")
        })
        .await;
    let narrow_id = {
        let after: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
        let new: Vec<&String> = after.difference(&before).collect();
        assert_eq!(
            new.len(),
            1,
            "exactly one new connection record for the second client: {new:?}"
        );
        new[0].clone()
    };

    // Run the generator until both sides of the filter have changes (each run picks random products).
    let mut published: Vec<Published> = Vec::new();
    for _ in 0..8 {
        published.extend(stack.run_generator().await);
        let inside = published
            .iter()
            .filter(|p| subset().contains(&p.product_id))
            .count();
        if published.len() >= 15 && inside > 0 && inside < published.len() {
            break;
        }
    }
    let expected_all: BTreeSet<String> = published.iter().map(|p| p.change_id.clone()).collect();
    let expected_narrow: BTreeSet<String> = published
        .iter()
        .filter(|p| subset().contains(&p.product_id))
        .map(|p| p.change_id.clone())
        .collect();
    assert!(!expected_narrow.is_empty() && expected_narrow.len() < expected_all.len());

    let has_all = |want: &BTreeSet<String>| {
        let want = want.clone();
        move |frames: &[Value]| {
            let changes: Vec<Value> = frames
                .iter()
                .filter(|f| f["type"] == "productChanged")
                .cloned()
                .collect();
            want.iter().all(|id| change_ids(&changes).contains(id))
        }
    };
    everything
        .wait_for("every published change", WAIT, has_all(&expected_all))
        .await;
    narrow
        .wait_for("the subscribed changes", WAIT, has_all(&expected_narrow))
        .await;
    // Anything extra would have arrived by now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (client, expected) in [(&everything, &expected_all), (&narrow, &expected_narrow)] {
        let changes = client.frames_of_type("productChanged");
        let received = change_ids(&changes);
        let distinct: BTreeSet<String> = received.iter().cloned().collect();
        assert_eq!(
            received.len(),
            distinct.len(),
            "no change arrives twice on a healthy run"
        );
        assert_eq!(
            &distinct, expected,
            "a client receives exactly the changes it subscribed to"
        );
        for (product, versions) in versions_by_product(&changes) {
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "{product}: versions not strictly increasing: {versions:?}"
            );
        }
    }

    // The last state pushed for each product is what DynamoDB holds.
    let mut last_pushed: BTreeMap<String, Value> = BTreeMap::new();
    for f in everything.frames_of_type("productChanged") {
        last_pushed.insert(
            f["productId"].as_str().unwrap().to_owned(),
            f["product"].clone(),
        );
    }
    for (product_id, pushed) in &last_pushed {
        let stored = serde_json::to_value(stack.product(product_id).await).unwrap();
        assert_eq!(
            pushed, &stored,
            "{product_id}: pushed state differs from the table"
        );
    }
    for p in &published {
        assert!(stack.product(&p.product_id).await.version >= p.version);
    }

    narrow.close().await;
    eventually("the closed client's record to be deleted", WAIT, || async {
        !stack.connection_ids().await.contains(&narrow_id)
    })
    .await;
    let everything_ids: Vec<String> = before.difference(&earlier).cloned().collect();
    let remaining = stack.connection_ids().await;
    assert!(
        everything_ids.iter().all(|id| remaining.contains(id)),
        "the other client stays connected: {everything_ids:?} in {remaining:?}"
    );
    everything.close().await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_batched_client_receives_the_same_changes_in_batch_frames() {
    let stack = Stack::load().await;
    let per_change = WsClient::subscribed(&stack.ws_url, None).await;
    let batched = WsClient::subscribed_as(&stack.ws_url, None, true).await;
    let acked = batched.frames_of_type("subscribed");
    assert_eq!(acked[0]["batched"], true, "{acked:?}");

    let mut published: Vec<Published> = Vec::new();
    while published.len() < 20 {
        published.extend(stack.run_generator().await);
    }
    let expected: BTreeSet<String> = published.iter().map(|p| p.change_id.clone()).collect();
    for client in [&per_change, &batched] {
        client
            .wait_for("every published change", WAIT, |frames| {
                let got = change_ids(
                    &frames
                        .iter()
                        .filter(|f| f["type"] == "productChanged")
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                expected.iter().all(|id| got.contains(id))
            })
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let changes = batched.frames_of_type("productChanged");
    let received: BTreeSet<String> = change_ids(&changes).into_iter().collect();
    assert_eq!(received.len(), changes.len(), "no change arrives twice");
    assert_eq!(
        received,
        change_ids(&per_change.frames_of_type("productChanged"))
            .into_iter()
            .collect(),
        "the same changes as a per-change client"
    );
    for (product, versions) in versions_by_product(&changes) {
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{product}: versions not strictly increasing: {versions:?}"
        );
    }
    let (batch_frames, held) = batched.batches();
    assert_eq!(
        held,
        changes.len(),
        "every change came inside a batch frame ({batch_frames} frames)"
    );
    assert!(
        batch_frames <= held,
        "{batch_frames} frames for {held} changes"
    );
    per_change.close().await;
    batched.close().await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn duplicates_and_older_versions_never_regress_stored_state() {
    let stack = Stack::load().await;
    let client = WsClient::connect(&stack.ws_url).await;
    client.send(r#"{"action":"subscribe","productIds":["p-060"]}"#);
    client
        .wait_for("subscribe ack", WAIT, |f| {
            f.iter().any(|f| f["type"] == "subscribed")
        })
        .await;

    let start = stack.product("p-060").await;
    let newer = change_of(
        &start,
        start.version + 2,
        StockAndPrice {
            price_cents: 4242,
            stock: 42,
        },
    );
    let older = change_of(
        &start,
        start.version + 1,
        StockAndPrice {
            price_cents: 1111,
            stock: 11,
        },
    );

    stack.publish(&newer, 1).await;
    client
        .wait_for("the newer change", WAIT, |f| {
            f.iter().any(|f| f["changeId"] == newer.change_id.as_str())
        })
        .await;
    stack.publish(&older, 1).await; // out of order: arrives after a newer version was applied
    stack.publish(&newer, 2).await; // duplicate delivery
    client
        .wait_for("the duplicate to be pushed again", WAIT, |f| {
            f.iter()
                .filter(|f| f["changeId"] == newer.change_id.as_str())
                .count()
                == 2
        })
        .await;
    stack.wait_for_drained_changes_queue(WAIT).await;

    let stored = stack.product("p-060").await;
    assert_eq!(
        (stored.version, stored.price_cents, stored.stock),
        (newer.version, 4242, 42)
    );
    let versions: Vec<u64> = client
        .frames_of_type("productChanged")
        .iter()
        .map(|f| f["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        versions,
        [newer.version, newer.version],
        "the older version is never pushed"
    );
    client.close().await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_malformed_message_ends_in_the_dlq_and_its_batch_is_processed() {
    let stack = Stack::load().await;
    let marker = uuid::Uuid::new_v4().to_string();
    let malformed = format!(
        "{{\"eventType\":\"ProductChanged\",\"marker\":\"{marker}\",\"version\":\"not a number\""
    );

    // One SendMessageBatch: a malformed body among nine good changes, so the consumer gets them together.
    let mut good = Vec::new();
    for i in 40..49 {
        let product_id = format!("p-{i:03}");
        let p = stack.product(&product_id).await;
        good.push(change_of(
            &p,
            p.version + 1,
            StockAndPrice {
                price_cents: p.price_cents + 1,
                stock: p.stock + 1,
            },
        ));
    }
    let mut entries = vec![aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
        .id("malformed")
        .message_body(&malformed)
        .message_group_id("malformed")
        .message_deduplication_id(&marker)
        .build()
        .unwrap()];
    for (i, c) in good.iter().enumerate() {
        entries.push(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(format!("good-{i}"))
                .message_body(c.to_json())
                .message_group_id(&c.product_id)
                .message_deduplication_id(&c.change_id)
                .build()
                .unwrap(),
        );
    }
    let sent = stack
        .sqs
        .send_message_batch()
        .queue_url(stack.output("ChangesQueueUrl"))
        .set_entries(Some(entries))
        .send()
        .await
        .expect("SendMessageBatch");
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);

    for c in &good {
        let id = c.product_id.clone();
        eventually(&format!("{id} to be applied"), WAIT, || async {
            stack.product(&id).await.version == c.version
        })
        .await;
    }

    // The consumer moves it to the DLQ at once, with the reason as a message attribute.
    let dlq = stack.output("ChangesDeadLetterQueueUrl").to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let found: Vec<(String, String)> = loop {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage DLQ");
        let found: Vec<(String, String)> = out
            .messages()
            .iter()
            .filter(|m| m.body().is_some_and(|b| b.contains(&marker)))
            .map(|m| {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("failureReason"))
                    .and_then(|v| v.string_value())
                    .unwrap_or_default();
                (m.body().unwrap_or_default().to_owned(), reason.to_owned())
            })
            .collect();
        if !found.is_empty() {
            break found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the malformed message never reached the DLQ"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, malformed);
    assert!(
        found[0].1.contains("not a ProductChanged event"),
        "the reason travels with it: {:?}",
        found[0].1
    );
    // Nothing of the batch stays behind (the queue was empty when this test began).
    stack
        .wait_for_drained_changes_queue(Duration::from_secs(20))
        .await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn scripts_redrive_moves_a_dead_letter_back_and_it_is_applied() {
    let stack = Stack::load().await;
    // A valid change that was dead-lettered (say, after an outage outlasted maxReceiveCount).
    let p = stack.product("p-059").await;
    let change = change_of(
        &p,
        p.version + 1,
        StockAndPrice {
            price_cents: 7777,
            stock: 77,
        },
    );
    stack
        .sqs
        .send_message()
        .queue_url(stack.output("ChangesDeadLetterQueueUrl"))
        .message_body(change.to_json())
        .message_group_id(&change.product_id)
        .message_deduplication_id(&change.change_id)
        .send()
        .await
        .expect("SendMessage DLQ");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/redrive");
    let out = std::process::Command::new(script)
        .output()
        .expect("run scripts/redrive");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/redrive failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("group=p-059"),
        "it lists what it moves: {stdout}"
    );

    eventually("the redriven change to be applied", WAIT, || async {
        stack.product("p-059").await.version == change.version
    })
    .await;
    let stored = stack.product("p-059").await;
    assert_eq!((stored.price_cents, stored.stock), (7777, 77));
    assert!(
        stack
            .dead_letters_containing(&change.change_id)
            .await
            .is_empty(),
        "it left the DLQ"
    );
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_client_over_its_frame_rate_gets_rate_limited_error_frames() {
    let stack = Stack::load().await;
    let names = ["WS_MESSAGES_PER_SECOND", "WS_MESSAGE_BURST"];
    let mut previous = Vec::new();
    for name in names {
        previous.push(stack.function_env("WebSocketFunctionName", name).await);
    }
    stack
        .set_function_env(
            "WebSocketFunctionName",
            &[(names[0], Some("0.2")), (names[1], Some("3"))],
        )
        .await;
    let client = WsClient::connect(&stack.ws_url).await;
    for _ in 0..8 {
        client.send(r#"{"action":"subscribe"}"#);
    }
    client
        .wait_for("a reply to each frame", Duration::from_secs(30), |f| {
            f.len() == 8
        })
        .await;
    let frames = client.frames();
    let limited = frames
        .iter()
        .filter(|f| f["type"] == "error" && f["code"] == "rate_limited")
        .count();
    let subscribed = frames.iter().filter(|f| f["type"] == "subscribed").count();
    let restore: Vec<(&str, Option<&str>)> = names
        .iter()
        .zip(&previous)
        .map(|(n, v)| (*n, v.as_deref()))
        .collect();
    stack
        .set_function_env("WebSocketFunctionName", &restore)
        .await;
    client.close().await;
    // Burst 3 per warm container: frames beyond it are refused (more containers, more burst).
    assert!(
        limited >= 1,
        "none of 8 quick frames was rate limited: {frames:?}"
    );
    assert_eq!(
        subscribed + limited,
        8,
        "each frame got one reply: {frames:?}"
    );
}

#[tokio::test]
#[ignore = "needs the emulator: scripts/test runs it"]
async fn the_change_log_is_read_in_order_across_its_partitions() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use catalog_core::aws::{DynamoChangeLog, ENTRIES_PER_PARTITION};
    use catalog_core::ports::ChangeLog;

    // A table of its own, shaped like the stack's, so no SSE reader of the stack sees these.
    let stack = Stack::load().await;
    let table = format!("e2e-change-log-{}", uuid::Uuid::new_v4().simple());
    let attribute = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    stack
        .dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("stream", ScalarAttributeType::S))
        .attribute_definitions(attribute("seq", ScalarAttributeType::N))
        .key_schema(key("stream", KeyType::Hash))
        .key_schema(key("seq", KeyType::Range))
        .send()
        .await
        .expect("CreateTable");
    let log = DynamoChangeLog::new(stack.dynamo.clone(), &table, 3600, 2);

    // One product, so one shard: its entries span three partitions.
    let count = 2 * ENTRIES_PER_PARTITION + 17;
    let mut shard = 0;
    for i in 0..count {
        shard = log
            .append("productChanged", "p-001", &format!("{{\"n\":{i}}}"))
            .await
            .unwrap()
            .shard;
    }
    let head = log.head().await.unwrap();
    assert_eq!(head.0[shard], count);

    // From anywhere, in pages of any size, every entry once and in order.
    for (start, page) in [
        (0, 500),
        (0, 7),
        (ENTRIES_PER_PARTITION - 1, 30),
        (150, 1000),
    ] {
        let mut seqs = Vec::new();
        let mut after = start;
        loop {
            let entries = log
                .read_after(shard, after, head.0[shard], page)
                .await
                .unwrap();
            assert!(entries.len() <= page);
            let Some(last) = entries.last() else { break };
            after = last.seq;
            seqs.extend(entries.iter().map(|e| e.seq));
        }
        assert_eq!(
            seqs,
            ((start + 1)..=count).collect::<Vec<_>>(),
            "from {start} in pages of {page}"
        );
    }
    // Nothing past the head a reader was given, nothing from the other shard.
    let through = log.read_after(shard, 0, 120, 500).await.unwrap();
    assert_eq!(through.last().map(|e| e.seq), Some(120));
    assert!(log
        .read_after(1 - shard, 0, count, 500)
        .await
        .unwrap()
        .is_empty());

    stack
        .dynamo
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("DeleteTable");
}
