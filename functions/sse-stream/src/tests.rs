use catalog_core::fakes::MemoryChangeLog;

use super::*;

fn entry(seq: u64, logged_at_ms: i64) -> LogEntry {
    LogEntry {
        seq,
        event_type: "productChanged".into(),
        product_id: format!("p-{:03}", seq % 3 + 1),
        data: format!(r#"{{"type":"productChanged","n":{seq}}}"#),
        logged_at_ms,
    }
}

#[test]
fn requests_from_headers_and_query() {
    assert_eq!(SseRequest::parse(None, "").unwrap(), SseRequest::default());
    let r = SseRequest::parse(Some("42"), "productIds=p-001,p-002&lastEventId=7").unwrap();
    assert_eq!(r.last_event_id, Some(42), "the header wins over the query");
    assert_eq!(r.product_ids.unwrap().len(), 2);
    assert_eq!(
        SseRequest::parse(None, "lastEventId=7")
            .unwrap()
            .last_event_id,
        Some(7)
    );
    assert!(SseRequest::parse(Some("abc"), "").is_err());
    assert!(SseRequest::parse(None, "productIds=,").is_err());
}

#[test]
fn events_are_framed_as_sse() {
    assert_eq!(
        format_event(&entry(5, 0)),
        "id: 5\nevent: productChanged\ndata: {\"type\":\"productChanged\",\"n\":5}\n\n"
    );
}

#[test]
fn entries_are_admitted_in_order_and_a_hole_is_waited_for_then_skipped() {
    let mut order = InOrder {
        last: 10,
        grace_ms: 2000,
    };
    let now = 100_000;
    // 12 arrived before 11: hold it back while it is fresh.
    assert!(order.admit(vec![entry(12, now - 100)], now).is_empty());
    assert_eq!(order.last, 10);
    // 11 shows up: both go, in order.
    let got: Vec<u64> = order
        .admit(vec![entry(11, now), entry(12, now - 100)], now)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, [11, 12]);
    // 13 never comes; 14 waits out the grace period, then goes.
    assert!(order.admit(vec![entry(14, now)], now + 1999).is_empty());
    let got: Vec<u64> = order
        .admit(vec![entry(14, now)], now + 2000)
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(got, [14]);
    // Anything at or below the last id is never sent again.
    assert!(order
        .admit(vec![entry(12, now), entry(14, now)], now + 5000)
        .is_empty());
}

async fn collect(log: &MemoryChangeLog, request: SseRequest, millis: u64) -> String {
    let (tx, mut rx) = mpsc::channel(1000);
    let config = SessionConfig {
        poll: Duration::from_millis(10),
        heartbeat: Duration::from_millis(50),
        max_duration: Duration::from_millis(millis),
        grace: Duration::from_millis(0),
    };
    let summary = run_session(log, &request, config, tx).await.unwrap();
    assert!(!summary.client_left);
    let mut text = String::new();
    while let Ok(chunk) = rx.try_recv() {
        text.push_str(&chunk);
    }
    text
}

fn ids(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_new_client_starts_at_the_head_and_resume_continues_after_its_last_id() {
    let log = MemoryChangeLog::default();
    for i in 0..5 {
        log.append("productChanged", &format!("p-00{}", i % 2 + 1), "{}")
            .await
            .unwrap();
    }
    let fresh = collect(&log, SseRequest::default(), 60).await;
    assert!(
        ids(&fresh).is_empty(),
        "history is not replayed to a new client"
    );
    assert!(fresh.starts_with("retry: 1000\n"));
    assert!(
        fresh.contains(": heartbeat"),
        "idle connections get heartbeats"
    );

    let resumed = collect(
        &log,
        SseRequest {
            last_event_id: Some(2),
            product_ids: None,
        },
        30,
    )
    .await;
    assert_eq!(ids(&resumed), [3, 4, 5]);
    let only_p1 = SseRequest {
        last_event_id: Some(0),
        product_ids: Some(["p-001".to_owned()].into()),
    };
    assert_eq!(ids(&collect(&log, only_p1, 30).await), [1, 3, 5]);
}

#[tokio::test]
async fn a_session_sees_events_appended_while_it_runs_and_ends_when_the_client_leaves() {
    let log = std::sync::Arc::new(MemoryChangeLog::default());
    let (tx, mut rx) = mpsc::channel(100);
    let config = SessionConfig {
        poll: Duration::from_millis(5),
        ..SessionConfig::default()
    };
    let session = {
        let log = log.clone();
        tokio::spawn(
            async move { run_session(log.as_ref(), &SseRequest::default(), config, tx).await },
        )
    };
    assert!(rx.recv().await.unwrap().starts_with("retry:"));
    log.append("productChanged", "p-001", r#"{"x":1}"#)
        .await
        .unwrap();
    assert_eq!(
        rx.recv().await.unwrap(),
        "id: 1\nevent: productChanged\ndata: {\"x\":1}\n\n"
    );
    drop(rx);
    let summary = tokio::time::timeout(Duration::from_secs(2), session)
        .await
        .expect("the session ends")
        .unwrap()
        .unwrap();
    assert_eq!((summary.events, summary.client_left), (1, true));
}
