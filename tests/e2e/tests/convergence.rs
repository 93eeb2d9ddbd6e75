//! What a client that follows the README's protocol ends up holding when it joins, changes
//! its filter or reconnects while changes flow: the table's state, a few seconds after the
//! last change, with nothing missed in between.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use catalog_core::{Product, StockAndPrice};
use e2e::{change_of, Stack, WsClient};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The catalogue as the table holds it now, by product id.
async fn table_versions(stack: &Stack, ids: &[String]) -> BTreeMap<String, u64> {
    let mut versions = BTreeMap::new();
    for id in ids {
        versions.insert(id.clone(), stack.product(id).await.version);
    }
    versions
}

/// Publishes `count` changes at `rate` per second straight to the topic (as the generator
/// would), over the products in a random order, each one version past the last.
fn publish_in_background(
    stack: &Arc<Stack>,
    mut products: BTreeMap<String, Product>,
    count: usize,
    rate: f64,
) -> tokio::task::JoinHandle<usize> {
    let stack = stack.clone();
    tokio::spawn(async move {
        let mut ids: Vec<String> = products.keys().cloned().collect();
        fastrand::shuffle(&mut ids);
        let started = Instant::now();
        let mut sends = Vec::new();
        for i in 0..count {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
            let product = products.get_mut(&ids[i % ids.len()]).expect("product");
            let current = StockAndPrice {
                price_cents: product.price_cents + 1,
                stock: product.stock,
            };
            let change = change_of(product, product.version + 1, current);
            product.version = change.version;
            product.price_cents = current.price_cents;
            let stack = stack.clone();
            sends.push(tokio::spawn(async move { stack.publish(&change, 0).await }));
        }
        for send in sends {
            send.await.expect("publish task");
        }
        count
    })
}

/// A client's view as the README tells it to build one: the newest version of each product
/// from snapshots and pushed changes alike.
fn view(frames: &[Value]) -> BTreeMap<String, u64> {
    let mut view: BTreeMap<String, u64> = BTreeMap::new();
    let mut keep = |id: &str, version: u64| {
        let held = view.entry(id.to_owned()).or_insert(version);
        *held = (*held).max(version);
    };
    for frame in frames {
        match frame["type"].as_str() {
            Some("snapshot") => {
                for p in frame["products"].as_array().into_iter().flatten() {
                    keep(
                        p["productId"].as_str().unwrap(),
                        p["version"].as_u64().unwrap(),
                    );
                }
            }
            Some("productChanged") => keep(
                frame["productId"].as_str().unwrap(),
                frame["version"].as_u64().unwrap(),
            ),
            _ => {}
        }
    }
    view
}

/// The README's protocol: subscribe, wait for the acknowledgement, then ask for a snapshot
/// and wait until it is complete.
async fn follow(client: &WsClient, product_ids: Option<&[String]>) {
    let acks_before = client.frames_of_type("subscribed").len();
    let snapshots_before = client.frames_of_type("snapshot").len();
    let mut frame = serde_json::json!({"action": "subscribe"});
    if let Some(ids) = product_ids {
        frame["productIds"] = serde_json::json!(ids);
    }
    client.send(frame.to_string());
    client
        .wait_for("subscribe ack", WAIT, |f| {
            f.iter().filter(|f| f["type"] == "subscribed").count() > acks_before
        })
        .await;
    client.send(r#"{"action":"snapshot"}"#);
    client
        .wait_for("the whole snapshot", WAIT, |f| {
            let parts: Vec<&Value> = f
                .iter()
                .filter(|f| f["type"] == "snapshot")
                .skip(snapshots_before)
                .collect();
            parts
                .last()
                .is_some_and(|last| last["part"] == last["parts"])
        })
        .await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn clients_that_join_and_refilter_while_changes_flow_end_with_the_tables_state() {
    let stack = Arc::new(Stack::load().await);
    let ids: Vec<String> = (1..=60).map(|i| format!("p-{i:03}")).collect();
    let mut products = BTreeMap::new();
    for id in &ids {
        products.insert(id.clone(), stack.product(id).await);
    }

    // 50 changes/s for 12 s while 20 clients join, one every 500 ms.
    let publishing = publish_in_background(&stack, products, 600, 50.0);
    let mut clients: Vec<(WsClient, Option<Vec<String>>)> = Vec::new();
    for i in 0..20usize {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let client = WsClient::connect(&stack.ws_url).await;
        // Every third client takes everything; the others a few products, and every
        // fourth of those moves to other products a moment later.
        let filter: Option<Vec<String>> = (i % 3 != 0).then(|| {
            let mut some = ids.clone();
            fastrand::shuffle(&mut some);
            some.truncate(8);
            some
        });
        follow(&client, filter.as_deref()).await;
        let filter = if i % 4 == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut other = ids.clone();
            fastrand::shuffle(&mut other);
            other.truncate(8);
            follow(&client, Some(&other)).await;
            Some(other)
        } else {
            filter
        };
        clients.push((client, filter));
    }
    let published = publishing.await.expect("publisher");
    assert_eq!(published, 600);
    stack
        .wait_for_drained_changes_queue(Duration::from_secs(60))
        .await;

    // A few seconds after the last change every client holds the table's versions.
    let deadline = Instant::now() + Duration::from_secs(5);
    let table = table_versions(&stack, &ids).await;
    loop {
        let mut stale = Vec::new();
        for (n, (client, filter)) in clients.iter().enumerate() {
            let held = view(&client.frames());
            let wanted = filter.clone().unwrap_or_else(|| ids.clone());
            let behind: Vec<String> = wanted
                .iter()
                .filter(|id| held.get(*id) != table.get(*id))
                .map(|id| format!("{id} v{:?} (table v{})", held.get(id), table[id]))
                .collect();
            if !behind.is_empty() {
                stale.push(format!("client {n}: {}", behind.join(", ")));
            }
        }
        if stale.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} clients hold products older than the table:\n{}",
            stale.len(),
            clients.len(),
            stale.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (client, _) in clients {
        client.close().await;
    }
}

/// The resume position a client holds: its last `subscribed` frame's, moved on by the `log`
/// marks of live frames received at least `settleMs` before `now`.
fn resume_position(client: &WsClient, now: chrono::DateTime<chrono::Utc>) -> String {
    let frames = client.frames_since(0);
    let (ack_at, ack) = frames
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (f, _))| f["type"] == "subscribed")
        .map(|(i, (f, _))| (i, f.clone()))
        .expect("a subscribed frame");
    let settle = chrono::Duration::milliseconds(ack["settleMs"].as_i64().expect("settleMs"));
    let mut position: Vec<u64> = ack["position"]
        .as_str()
        .expect("position")
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    for (frame, received) in &frames[ack_at..] {
        if now - *received < settle {
            continue;
        }
        if let (Some(shard), Some(seq)) =
            (frame["log"]["shard"].as_u64(), frame["log"]["seq"].as_u64())
        {
            let slot = &mut position[shard as usize];
            *slot = (*slot).max(seq);
        }
    }
    position
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_websocket_client_that_drops_resumes_with_every_change_once_in_order() {
    let stack = Arc::new(Stack::load().await);
    let ids: Vec<String> = (1..=60).map(|i| format!("p-{i:03}")).collect();
    let mut products = BTreeMap::new();
    for id in &ids {
        products.insert(id.clone(), stack.product(id).await);
    }
    let mine: Vec<String> = ids.iter().step_by(6).cloned().collect();
    let started: BTreeMap<String, u64> = mine
        .iter()
        .map(|id| (id.clone(), products[id].version))
        .collect();

    let first = WsClient::connect(&stack.ws_url).await;
    follow(&first, Some(&mine)).await;
    // 50 changes/s for 8 s; the client's network drops after 2 s and it is back 1 s later.
    let publishing = publish_in_background(&stack, products, 400, 50.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resume_position(&first, chrono::Utc::now());
    let before_drop = first.frames();
    first.abandon();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = WsClient::connect(&stack.ws_url).await;
    second.send(
        serde_json::json!({"action": "subscribe", "productIds": mine, "after": after}).to_string(),
    );
    second
        .wait_for("the resumed subscription's ack", WAIT, |f| {
            f.iter().any(|f| f["type"] == "subscribed")
        })
        .await;
    publishing.await.expect("publisher");
    stack
        .wait_for_drained_changes_queue(Duration::from_secs(60))
        .await;
    let table = table_versions(&stack, &mine).await;

    // Both connections' changes, in the order received, each version applied once: every
    // version between where the client started and the table's, none skipped, none twice.
    let eventually_complete = Instant::now() + Duration::from_secs(5);
    loop {
        let mut received = before_drop.clone();
        received.extend(second.frames());
        let mut applied: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for frame in received.iter().filter(|f| f["type"] == "productChanged") {
            let id = frame["productId"].as_str().unwrap().to_owned();
            let version = frame["version"].as_u64().unwrap();
            let held = applied.entry(id.clone()).or_default();
            if held.last().is_none_or(|&last| version > last) {
                held.push(version);
            }
        }
        let wrong: Vec<String> = mine
            .iter()
            .filter_map(|id| {
                let expected: Vec<u64> = (started[id] + 1..=table[id]).collect();
                let got = applied.get(id).cloned().unwrap_or_default();
                (got != expected).then(|| format!("{id}: applied {got:?}, expected {expected:?}"))
            })
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(
            Instant::now() < eventually_complete,
            "the resumed client did not apply every change once in order:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        second.frames_of_type("error").is_empty(),
        "{:?}",
        second.frames_of_type("error")
    );
    second.close().await;
}
