use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use catalog_core::fakes::{
    product, MemoryChangeLog, MemoryConnections, MemoryProducts, RecordingPusher,
};

use super::*;

const CONNECTION: &str = "Sx2XhdJXoAMCJ0g=";
const SECRET: &[u8] = b"test-secret-test-secret-test-secret";

fn handler() -> WsHandler<MemoryConnections, MemoryProducts, RecordingPusher, MemoryChangeLog> {
    WsHandler {
        change_log: MemoryChangeLog::with_shards(4),
        resume_settle_ms: 15_000,
        connections: MemoryConnections::default(),
        products: MemoryProducts::with(
            (1..=120).map(|i| product(&format!("p-{i:03}"), 100 * i, i)),
        ),
        pusher: RecordingPusher::default(),
        verifier: catalog_core::auth::TokenVerifier::new(SECRET),
        limiter: catalog_core::rate::RateLimiter::new(1000.0, 1000),
        connection_ttl_secs: 7200,
    }
}

fn fixture(name: &str) -> ApiGatewayWebsocketProxyRequest {
    let case = match name {
        "connect" => "connect-without-token",
        "message" => "subscribe",
        other => other,
    };
    let token = catalog_core::auth::issue(SECRET, "tester", 60);
    serde_json::from_str(&catalog_core::event_fixtures::load_with_token(
        "ws-handler",
        case,
        &token,
    ))
    .unwrap()
}

/// Every fixture in `events/ws-handler/` through the handler, on a connected client.
#[tokio::test]
async fn each_websocket_event_fixture_does_what_its_name_says() {
    let expected = [
        ("connect-with-token", RouteOutcome::Connected),
        ("connect-without-token", RouteOutcome::ConnectRefused),
        ("disconnect", RouteOutcome::Disconnected),
        ("subscribe", RouteOutcome::Subscribed),
        ("snapshot", RouteOutcome::SnapshotSent),
        ("bad-frame", RouteOutcome::FrameRefused),
    ];
    catalog_core::event_fixtures::assert_covered(
        "ws-handler",
        expected.iter().map(|(case, _)| *case),
    );
    for (case, outcome) in expected {
        let h = handler();
        h.handle(&connect()).await.unwrap();
        let event = fixture(case);
        if let Some(id) = &event.request_context.connection_id {
            h.connections.add(id, 0, 0).await.unwrap();
        }
        assert_eq!(h.handle(&event).await.unwrap(), outcome, "{case}");
    }
}

/// The connect fixture carrying a valid token in its query string.
fn connect() -> ApiGatewayWebsocketProxyRequest {
    let mut request = fixture("connect");
    let token = catalog_core::auth::issue(SECRET, "tester", 60);
    request.query_string_parameters =
        std::collections::HashMap::from([("token".to_owned(), token)]).into();
    request
}

fn message(body: &str) -> ApiGatewayWebsocketProxyRequest {
    let mut request = fixture("message");
    request.body = Some(body.to_owned());
    request
}

#[tokio::test]
async fn connect_subscribe_disconnect_from_real_events() {
    let h = handler();
    assert_eq!(h.handle(&connect()).await.unwrap(), RouteOutcome::Connected);
    assert_eq!(h.connections.ids(), [CONNECTION]);

    assert_eq!(
        h.handle(&fixture("message")).await.unwrap(),
        RouteOutcome::Subscribed
    );
    let connections = h.connections.all().await.unwrap();
    let filter: Vec<String> = connections[0]
        .product_ids
        .clone()
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(filter, ["p-001", "p-002"]);
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(frames[0]["type"], "subscribed");
    assert_eq!(
        frames[0]["productIds"],
        serde_json::json!(["p-001", "p-002"])
    );

    // The disconnect fixture is another connection; connect it first so its removal is visible.
    let disconnect = fixture("disconnect");
    let other = disconnect.request_context.connection_id.clone().unwrap();
    h.connections.add(&other, 0, 0).await.unwrap();
    assert_eq!(
        h.handle(&disconnect).await.unwrap(),
        RouteOutcome::Disconnected
    );
    assert_eq!(h.connections.ids(), [CONNECTION]);
}

#[tokio::test]
async fn subscribe_without_ids_clears_the_filter() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    h.handle(&fixture("message")).await.unwrap();
    h.handle(&message(r#"{"action":"subscribe"}"#))
        .await
        .unwrap();
    assert_eq!(h.connections.all().await.unwrap()[0].product_ids, None);
}

#[tokio::test]
async fn a_batched_subscription_is_recorded_acknowledged_and_undone_by_a_plain_one() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    h.handle(&message(
        r#"{"action":"subscribe","productIds":["p-003"],"batched":true}"#,
    ))
    .await
    .unwrap();
    let connection = &h.connections.all().await.unwrap()[0];
    assert!(connection.batched);
    let ack = &h.pusher.frames(CONNECTION)[0];
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["batched"], true);
    h.handle(&message(r#"{"action":"subscribe"}"#))
        .await
        .unwrap();
    assert!(!h.connections.all().await.unwrap()[0].batched);
    assert!(
        h.pusher.frames(CONNECTION)[1].get("batched").is_none(),
        "a plain acknowledgement is what it always was"
    );
}

#[tokio::test]
async fn snapshot_sends_the_whole_catalogue_in_parts() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    assert_eq!(
        h.handle(&message(r#"{"action":"snapshot"}"#))
            .await
            .unwrap(),
        RouteOutcome::SnapshotSent
    );
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(frames.len(), 2);
    let total: usize = frames
        .iter()
        .map(|f| f["products"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 120);
    assert_eq!(
        (frames[1]["part"].as_u64(), frames[1]["parts"].as_u64()),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn a_filtered_snapshot_holds_only_the_subscribed_products() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    h.handle(&message(
        r#"{"action":"subscribe","productIds":["p-007","p-003","p-999"]}"#,
    ))
    .await
    .unwrap();
    h.handle(&message(r#"{"action":"snapshot"}"#))
        .await
        .unwrap();
    let frames = h.pusher.frames(CONNECTION);
    let snapshot = &frames[1];
    assert_eq!(snapshot["type"], "snapshot");
    let ids: Vec<&str> = snapshot["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["productId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p-003", "p-007"], "an unknown id is not an error");
}

/// Logs a `productChanged`-like entry for `product_id` at `version`.
async fn log_change(
    h: &WsHandler<MemoryConnections, MemoryProducts, RecordingPusher, MemoryChangeLog>,
    product_id: &str,
    version: u64,
) {
    let data =
        serde_json::json!({"type":"productChanged","productId":product_id,"version":version})
            .to_string();
    h.change_log
        .append("productChanged", product_id, &data)
        .await
        .unwrap();
}

#[tokio::test]
async fn subscribing_names_the_log_position_from_which_it_is_live() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    log_change(&h, "p-001", 1).await;
    log_change(&h, "p-002", 1).await;
    h.handle(&message(r#"{"action":"subscribe"}"#))
        .await
        .unwrap();
    let ack = &h.pusher.frames(CONNECTION)[0];
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(
        ack["position"].as_str().unwrap(),
        h.change_log.head().await.unwrap().to_string()
    );
    assert_eq!(ack["settleMs"], 15_000);
}

#[tokio::test]
async fn a_resuming_subscribe_replays_its_products_changes_after_the_position_in_order() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    log_change(&h, "p-001", 1).await;
    let position = h.change_log.head().await.unwrap().to_string();
    for version in 2..=4 {
        log_change(&h, "p-001", version).await;
        log_change(&h, "p-002", version).await;
        log_change(&h, "p-003", version).await;
    }
    let frame =
        serde_json::json!({"action":"subscribe","productIds":["p-001","p-003"],"after":position});
    assert_eq!(
        h.handle(&message(&frame.to_string())).await.unwrap(),
        RouteOutcome::Subscribed
    );
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(
        frames.len(),
        2,
        "one batch of replayed changes, then the ack"
    );
    assert_eq!(frames[0]["type"], "batch");
    let replayed: Vec<(String, u64)> = frames[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["productId"].as_str().unwrap().to_owned(),
                f["version"].as_u64().unwrap(),
            )
        })
        .collect();
    for id in ["p-001", "p-003"] {
        let versions: Vec<u64> = replayed
            .iter()
            .filter(|(p, _)| p == id)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(versions, [2, 3, 4], "{id}");
    }
    assert!(replayed.iter().all(|(p, _)| p != "p-002"), "not subscribed");
    assert_eq!(frames[1]["type"], "subscribed");
    assert_eq!(
        frames[1]["position"].as_str().unwrap(),
        h.change_log.head().await.unwrap().to_string()
    );
}

#[tokio::test]
async fn a_resume_too_far_back_or_from_a_foreign_position_is_told_so_and_still_subscribes() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    let start = h.change_log.head().await.unwrap().to_string();
    for version in 1..=(MAX_REPLAY_ENTRIES + 1) {
        log_change(&h, "p-001", version).await;
    }
    let frame = serde_json::json!({"action":"subscribe","after":start});
    h.handle(&message(&frame.to_string())).await.unwrap();
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(frames[0]["code"], "resume_too_far");
    assert!(frames[0]["message"].as_str().unwrap().contains("snapshot"));
    assert_eq!(frames[1]["type"], "subscribed");

    for after in ["1.2", "99999.0.0.0"] {
        let sent = h.pusher.frames(CONNECTION).len();
        let frame = serde_json::json!({"action":"subscribe","after":after});
        h.handle(&message(&frame.to_string())).await.unwrap();
        let answer = h.pusher.frames(CONNECTION)[sent].clone();
        assert_eq!(answer["code"], "invalid_field", "{after}: {answer}");
    }

    // The first entries after a position have expired (TTL): not replayable either.
    let before_expiry = h.change_log.head().await.unwrap().to_string();
    log_change(&h, "p-001", 2000).await;
    log_change(&h, "p-001", 2001).await;
    let first_new =
        h.change_log.head().await.unwrap().0[catalog_core::ports::shard_of("p-001", 4)] - 1;
    h.change_log
        .entries
        .lock()
        .unwrap()
        .retain(|e| e.seq != first_new);
    let sent = h.pusher.frames(CONNECTION).len();
    let frame =
        serde_json::json!({"action":"subscribe","productIds":["p-001"],"after":before_expiry});
    h.handle(&message(&frame.to_string())).await.unwrap();
    let answer = h.pusher.frames(CONNECTION)[sent].clone();
    assert_eq!(answer["code"], "resume_too_far", "{answer}");
}

#[tokio::test]
async fn every_bad_frame_gets_an_error_frame() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    let bad = [
        "",
        "hello",
        r#"{"action":"buy"}"#,
        r#"{"action":"subscribe","productIds":[]}"#,
        "[]",
    ];
    for body in bad {
        assert_eq!(
            h.handle(&message(body)).await.unwrap(),
            RouteOutcome::FrameRefused
        );
    }
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(frames.len(), bad.len());
    assert!(frames
        .iter()
        .all(|f| f["type"] == "error" && f["code"].is_string()));
    assert_eq!(frames[2]["code"], "unknown_action");
}

#[tokio::test]
async fn subscribe_from_an_unregistered_connection_is_told_so() {
    let h = handler();
    assert_eq!(
        h.handle(&fixture("message")).await.unwrap(),
        RouteOutcome::FrameRefused
    );
    assert_eq!(h.pusher.frames(CONNECTION)[0]["code"], "unknown_connection");
}

#[tokio::test]
async fn a_reply_to_a_gone_client_removes_it() {
    let h = handler();
    h.handle(&connect()).await.unwrap();
    h.pusher.gone.lock().unwrap().insert(CONNECTION.to_owned());
    assert_eq!(
        h.handle(&message(r#"{"action":"snapshot"}"#))
            .await
            .unwrap(),
        RouteOutcome::ReplyGone
    );
    assert!(h.connections.ids().is_empty());
}

#[tokio::test]
async fn connect_without_a_valid_token_is_refused_before_anything_is_written() {
    let h = handler();
    let mut with_header = fixture("connect");
    with_header.headers.insert(
        "authorization",
        format!("Bearer {}", catalog_core::auth::issue(SECRET, "t", 60))
            .parse()
            .unwrap(),
    );
    assert_eq!(
        h.handle(&with_header).await.unwrap(),
        RouteOutcome::Connected
    );
    h.connections.remove(CONNECTION).await.unwrap();

    let expired = catalog_core::auth::issue(SECRET, "t", -120);
    let foreign = catalog_core::auth::issue(b"some-other-secret-some-other-secret", "t", 60);
    for token in [
        None,
        Some("garbage".to_owned()),
        Some(expired),
        Some(foreign),
    ] {
        let mut request = fixture("connect");
        request.query_string_parameters = token
            .map(|t| std::collections::HashMap::from([("token".to_owned(), t)]).into())
            .unwrap_or_default();
        assert_eq!(
            h.handle(&request).await.unwrap(),
            RouteOutcome::ConnectRefused
        );
        assert!(
            h.connections.ids().is_empty(),
            "no record for a refused connect"
        );
    }
}

#[tokio::test]
async fn frames_over_the_per_connection_rate_get_a_rate_limited_error_frame() {
    let mut h = handler();
    h.limiter = catalog_core::rate::RateLimiter::new(0.01, 3);
    h.handle(&connect()).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(
            h.handle(&message(r#"{"action":"subscribe"}"#))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        outcomes,
        [
            RouteOutcome::Subscribed,
            RouteOutcome::Subscribed,
            RouteOutcome::Subscribed,
            RouteOutcome::RateLimited,
            RouteOutcome::RateLimited
        ]
    );
    let frames = h.pusher.frames(CONNECTION);
    assert_eq!(frames[4]["code"], "rate_limited");
    assert!(frames[4]["message"].as_str().unwrap().contains("slow down"));
}
