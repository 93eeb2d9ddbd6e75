use std::sync::Arc;

use axum::body::Body;
use catalog_core::fakes::MemoryChangeLog;
use futures::StreamExt;
use tower::ServiceExt;

use super::*;

fn entry(seq: u64, logged_at_ms: i64) -> LogEntry {
    LogEntry {
        shard: 0,
        seq,
        event_type: "productChanged".into(),
        product_id: format!("p-{:03}", seq % 3 + 1),
        data: format!(r#"{{"type":"productChanged","n":{seq}}}"#),
        logged_at_ms,
    }
}

fn position(seqs: &[u64]) -> LogPosition {
    LogPosition(seqs.to_vec())
}

#[test]
fn requests_from_headers_and_query() {
    assert_eq!(
        SseRequest::parse(None, "", 2).unwrap(),
        SseRequest::default()
    );
    let r = SseRequest::parse(Some("4.2"), "productIds=p-001,p-002&lastEventId=7.0", 2).unwrap();
    assert_eq!(
        r.last_event_id,
        Some(position(&[4, 2])),
        "the header wins over the query"
    );
    assert_eq!(r.product_ids.unwrap().len(), 2);
    assert_eq!(
        SseRequest::parse(None, "lastEventId=7.0", 2)
            .unwrap()
            .last_event_id,
        Some(position(&[7, 0]))
    );
    let refused = SseRequest::parse(Some("abc"), "", 2).unwrap_err();
    assert!(refused.contains("not an event id"), "{refused}");
    assert!(
        SseRequest::parse(Some("42"), "", 2).is_err(),
        "an id of another shard count"
    );
    assert!(SseRequest::parse(None, "productIds=,", 2).is_err());
}

#[tokio::test]
async fn events_are_framed_as_sse() {
    let framed = Sse::new(futures::stream::iter([Ok::<_, Infallible>(event_of(
        &entry(5, 0),
        &position(&[5, 3]),
    ))]))
    .into_response();
    let body = axum::body::to_bytes(framed.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        body,
        "id: 5.3\nevent: productChanged\ndata: {\"type\":\"productChanged\",\"n\":5}\n\n"
    );
}

#[test]
fn entries_are_admitted_in_order_and_a_hole_is_waited_for_then_skipped() {
    let mut order = InOrder {
        position: position(&[10, 3]),
        grace_ms: 2000,
    };
    let now = 100_000;
    // 12 arrived before 11: hold it back while it is fresh.
    assert!(order.admit(0, vec![entry(12, now - 100)], now).is_empty());
    assert_eq!(order.position, position(&[10, 3]));
    // 11 shows up: both go, in order.
    let got: Vec<u64> = order
        .admit(0, vec![entry(11, now), entry(12, now - 100)], now)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, [11, 12]);
    // 13 never comes; 14 waits out the grace period, then goes.
    assert!(order.admit(0, vec![entry(14, now)], now + 1999).is_empty());
    let got: Vec<u64> = order
        .admit(0, vec![entry(14, now)], now + 2000)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, [14]);
    // Anything at or below the last id is never sent again.
    assert!(order
        .admit(0, vec![entry(12, now), entry(14, now)], now + 5000)
        .is_empty());
    assert_eq!(
        order.position,
        position(&[14, 3]),
        "the other shard is untouched"
    );
}

fn stream_of(log: Arc<MemoryChangeLog>, session: SessionConfig) -> Router {
    router(Arc::new(SseStream {
        log,
        session,
        on_session_end: None,
    }))
}

fn get(request: &SseRequest) -> axum::http::Request<Body> {
    let uri = match &request.product_ids {
        Some(ids) => format!(
            "/?productIds={}",
            ids.iter().cloned().collect::<Vec<_>>().join(",")
        ),
        None => "/".to_owned(),
    };
    let mut builder = axum::http::Request::get(uri);
    if let Some(position) = &request.last_event_id {
        builder = builder.header("last-event-id", position.to_string());
    }
    builder.body(Body::empty()).unwrap()
}

/// Everything one whole session of `millis` sends, read through the router as a client would.
async fn collect(log: &Arc<MemoryChangeLog>, request: SseRequest, millis: u64) -> String {
    let config = SessionConfig {
        poll: Duration::from_millis(10),
        heartbeat: Duration::from_millis(50),
        max_duration: Duration::from_millis(millis),
        grace: Duration::from_millis(0),
    };
    let response = stream_of(log.clone(), config)
        .oneshot(get(&request))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

fn ids(text: &str, shards: usize) -> Vec<LogPosition> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| LogPosition::parse(id, shards).unwrap())
        .collect()
}

/// The data of every change event (not the session's `ready` event).
fn data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.starts_with(r#"{"position""#))
        .map(str::to_owned)
        .collect()
}

/// Appends event number `n` of `product` (its data names both).
async fn append_one(log: &MemoryChangeLog, product: &str, n: usize) {
    log.append(
        "productChanged",
        product,
        &format!(r#"{{"n":{n},"p":"{product}"}}"#),
    )
    .await
    .unwrap();
}

async fn append_numbered(log: &MemoryChangeLog, products: &[&str], count: usize) {
    for i in 0..count {
        append_one(log, products[i % products.len()], i).await;
    }
}

#[tokio::test]
async fn a_session_says_ready_with_its_start_before_any_change() {
    let log = Arc::new(MemoryChangeLog::with_shards(4));
    append_numbered(&log, &["p-001", "p-002"], 5).await;
    let start = log.head().await.unwrap();
    let text = collect(&log, SseRequest::default(), 300).await;
    let ready = text.find("event: ready").expect("a ready event");
    assert!(
        text[ready..].contains(&format!(r#"data: {{"position":"{start}"}}"#)),
        "{text}"
    );
    assert!(!text[..ready].contains("id: "), "nothing before it");
}

#[tokio::test]
async fn a_new_client_starts_at_the_head_and_resume_continues_after_its_last_id() {
    let log = Arc::new(MemoryChangeLog::with_shards(4));
    let products = ["p-001", "p-002", "p-003", "p-004", "p-005"];
    append_numbered(&log, &products, 5).await;
    let fresh = collect(&log, SseRequest::default(), 60).await;
    assert!(
        ids(&fresh, 4).is_empty(),
        "history is not replayed to a new client"
    );
    assert!(fresh.starts_with("retry: 1000\n"));
    assert!(
        fresh.contains(": heartbeat"),
        "idle connections get heartbeats"
    );

    let everything = collect(
        &log,
        SseRequest {
            last_event_id: Some(LogPosition::start(4)),
            product_ids: None,
        },
        30,
    )
    .await;
    let all_ids = ids(&everything, 4);
    assert_eq!(all_ids.len(), 5);
    assert!(LogPosition::start(4).followed_by(&all_ids[0]));
    assert!(
        all_ids.windows(2).all(|w| w[0].followed_by(&w[1])),
        "{all_ids:?}"
    );
    assert_eq!(all_ids[4], log.head().await.unwrap());

    // Resuming after the second event gives the last three, the same ones, once each.
    let resumed = collect(
        &log,
        SseRequest {
            last_event_id: Some(all_ids[1].clone()),
            product_ids: None,
        },
        30,
    )
    .await;
    assert_eq!(ids(&resumed, 4), all_ids[2..]);
    assert_eq!(data(&resumed), data(&everything)[2..]);

    let only_p1 = SseRequest {
        last_event_id: Some(LogPosition::start(4)),
        product_ids: Some(["p-001".to_owned()].into()),
    };
    let p1 = data(&collect(&log, only_p1, 30).await);
    assert_eq!(p1, [r#"{"n":0,"p":"p-001"}"#]);
}

/// Many products over many shards, read in sessions that end and resume from their last
/// id while changes keep coming: every event arrives once, none is skipped, each product's
/// in order, and each id is exactly one entry past the one before.
#[tokio::test]
async fn resume_across_sessions_never_repeats_or_skips_with_writes_in_between() {
    let log = std::sync::Arc::new(MemoryChangeLog::with_shards(8));
    let products: Vec<String> = (1..=40).map(|i| format!("p-{i:03}")).collect();
    let refs: Vec<&str> = products.iter().map(String::as_str).collect();
    let start = log.head().await.unwrap();
    let mut last = start.clone();
    let mut received = Vec::new();
    let mut written = 0;
    for round in 0..6 {
        for i in 0..37 {
            append_one(&log, refs[(round * 37 + i) % refs.len()], written).await;
            written += 1;
        }
        let text = collect(
            &log,
            SseRequest {
                last_event_id: Some(last.clone()),
                product_ids: None,
            },
            20,
        )
        .await;
        let round_ids = ids(&text, 8);
        for id in &round_ids {
            assert!(last.followed_by(id), "{last} then {id}");
            last = id.clone();
        }
        received.extend(data(&text));
    }
    assert_eq!(received.len(), written, "every event once");
    let mut numbers: Vec<u64> = received
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Per product, in the order written.
    for product in &refs {
        let mine: Vec<u64> = received
            .iter()
            .filter(|d| d.contains(&format!(r#""p":"{product}""#)))
            .map(|d| {
                serde_json::from_str::<serde_json::Value>(d).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{product}: {mine:?}");
    }
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (0..written as u64).collect::<Vec<_>>(),
        "nothing skipped"
    );
}

#[tokio::test]
async fn a_session_sees_events_appended_while_it_runs_and_ends_when_the_client_leaves() {
    let log = Arc::new(MemoryChangeLog::default());
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let app = router(Arc::new(SseStream {
        log: log.clone(),
        session: SessionConfig {
            poll: Duration::from_millis(5),
            ..SessionConfig::default()
        },
        on_session_end: Some(Box::new(move |result, _| {
            let _ = ended_tx.send(result.as_ref().ok().copied());
        })),
    }));
    let response = app.oneshot(get(&SseRequest::default())).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let opening = body.next().await.unwrap().unwrap();
    assert!(opening.starts_with(b"retry: 1000\n"), "{opening:?}");
    let ready = body.next().await.unwrap().unwrap();
    assert!(ready.starts_with(b"event: ready\n"), "{ready:?}");
    log.append("productChanged", "p-001", r#"{"x":1}"#)
        .await
        .unwrap();
    assert_eq!(
        body.next().await.unwrap().unwrap(),
        format!(
            "id: {}\nevent: productChanged\ndata: {{\"x\":1}}\n\n",
            log.head().await.unwrap()
        )
    );
    drop(body);
    let summary = tokio::time::timeout(Duration::from_secs(2), ended.recv())
        .await
        .expect("the session ends")
        .unwrap()
        .expect("without a change-log failure");
    assert_eq!((summary.events, summary.client_left), (1, true));
}

#[tokio::test]
async fn a_bad_last_event_id_or_product_list_is_a_400_with_a_json_error() {
    let log = Arc::new(MemoryChangeLog::with_shards(2));
    for (header, uri) in [(Some("yesterday"), "/"), (None, "/?productIds=,")] {
        let mut request = axum::http::Request::get(uri);
        if let Some(value) = header {
            request = request.header("last-event-id", value);
        }
        let response = stream_of(log.clone(), SessionConfig::default())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{uri}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "bad_request");
        assert!(json["error"]["message"].as_str().unwrap().len() > 10);
    }
}

/// The function-URL fixture (payload 2.0, as Lambda delivers it) through the router: a
/// stream, resumed from the fixture's `Last-Event-ID` and filtered by its `productIds`.
#[tokio::test]
async fn the_function_url_event_fixture_is_streamed() {
    let log = Arc::new(MemoryChangeLog::with_shards(16));
    append_numbered(&log, &["p-001", "p-002", "p-003"], 6).await;
    let text = catalog_core::event_fixtures::load("sse-stream", "function-url");
    let request = lambda_http::request::from_str(&text).unwrap();
    let response = stream_of(
        log,
        SessionConfig {
            poll: Duration::from_millis(10),
            max_duration: Duration::from_millis(50),
            ..SessionConfig::default()
        },
    )
    .oneshot(request)
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let mut products: Vec<String> = data(std::str::from_utf8(&body).unwrap())
        .iter()
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["p"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // Across shards the order is by log time; here only which events came matters.
    products.sort();
    assert_eq!(products, ["p-001", "p-001", "p-002", "p-002"]);
}
