//! The clients people run: the SSE stream with Last-Event-ID resume, and the two
//! JavaScript echo clients, spawned as processes and read through their output.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_core::ports::LogPosition;
use e2e::sse::SseConnection;
use e2e::{eventually, Published, Stack};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs the deployed stack and local/server: scripts/test runs it"]
async fn sse_resumes_after_a_dropped_connection_without_gap_or_duplicate() {
    let stack = Stack::load().await;
    let first = SseConnection::open(&stack.sse_url, None).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stack.run_generator().await;
    first.wait_for_changes(&before).await;
    let seen_first = first.events();
    let last_id = seen_first.last().unwrap().0.clone();
    first.drop_connection();

    // Changes made while the client is away.
    let mut during = stack.run_generator().await;
    during.extend(stack.run_generator().await);
    let second = SseConnection::open(&stack.sse_url, Some(&last_id)).await;
    second.wait_for_changes(&during).await;

    let ids: Vec<String> = seen_first
        .iter()
        .chain(second.events().iter())
        .map(|e| e.0.to_string())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no event twice: {ids:?}");
    let positions: Vec<LogPosition> = seen_first
        .iter()
        .chain(second.events().iter())
        .map(|e| e.0.clone())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0].followed_by(&w[1])),
        "each id is one entry past the one before, across the reconnect: {ids:?}"
    );
    assert!(second.events().iter().all(|e| last_id.precedes(&e.0)));
    assert!(seen_first
        .iter()
        .chain(second.events().iter())
        .all(|e| e.1 == "productChanged" || e.1 == "productPhotoChanged"));

    // A filtered stream only carries its products.
    let one = during[0].product_id.clone();
    let url = format!("{}?productIds={one}", stack.sse_url);
    let filtered = SseConnection::open(&url, Some(&last_id)).await;
    eventually("the filtered resume", WAIT, || async {
        filtered
            .events()
            .iter()
            .any(|e| e.2.contains(&during[0].change_id))
    })
    .await;
    assert!(filtered
        .events()
        .iter()
        .all(|e| e.2.contains(&format!("\"productId\":\"{one}\""))));
    second.drop_connection();
    filtered.drop_connection();
}

/// A spawned echo client and the lines it printed (stdout and stderr).
struct EchoClient {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl EchoClient {
    fn spawn(script: &str, env: &[(&str, &str)]) -> EchoClient {
        EchoClient::spawn_with(script, &[], env)
    }

    fn spawn_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> EchoClient {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut command = tokio::process::Command::new("node");
        command
            .arg(format!("{root}/clients/{script}"))
            .args(args)
            .current_dir(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("node runs the echo client");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        EchoClient { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, check: impl Fn(&[String]) -> bool) {
        eventually(what, WAIT, || async { check(&self.lines()) }).await;
    }
}

fn printed_each(lines: &[String], changes: &[Published]) -> bool {
    changes.iter().all(|c| {
        lines.iter().any(|l| {
            l.contains(&c.change_id)
                && l.contains(&c.product_id)
                && l.contains(&format!(" v{} ", c.version))
        })
    })
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_batched_ws_echo_client_prints_each_change_of_its_batches() {
    let stack = Stack::load().await;
    let ws = EchoClient::spawn_with("ws-echo.mjs", &["--batched"], &[("WS_URL", &stack.ws_url)]);
    ws.wait_for("ws-echo subscribed batched", |l| {
        l.iter()
            .any(|l| l.contains("subscribed to every product (batched)"))
    })
    .await;
    let changes = stack.run_generator().await;
    ws.wait_for("ws-echo printed every change", |l| {
        printed_each(l, &changes)
    })
    .await;
    assert!(
        ws.lines()
            .iter()
            .all(|l| !l.contains("error") && !l.contains("\"batch\"")),
        "{:?}",
        ws.lines()
    );
}

#[tokio::test]
#[ignore = "needs the deployed stack and local/server: scripts/test runs it"]
async fn echo_clients_print_each_update_and_come_back_after_a_disconnect() {
    let stack = Stack::load().await;
    let before: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
    let ws = EchoClient::spawn("ws-echo.mjs", &[("WS_URL", &stack.ws_url)]);
    let sse = EchoClient::spawn("sse-echo.mjs", &[("SSE_URL", &stack.sse_url)]);
    ws.wait_for("ws-echo subscribed", |l| {
        l.iter().any(|l| l.contains("subscribed to every product"))
    })
    .await;
    sse.wait_for("sse-echo connected", |l| {
        l.iter().any(|l| l.contains("connected to"))
    })
    .await;

    let changes = stack.run_generator().await;
    ws.wait_for("ws-echo printed every change", |l| {
        printed_each(l, &changes)
    })
    .await;
    sse.wait_for("sse-echo printed every change", |l| {
        printed_each(l, &changes)
    })
    .await;
    assert!(
        ws.lines().iter().all(|l| !l.contains("error")),
        "{:?}",
        ws.lines()
    );

    // The server drops the WebSocket client: it reconnects and subscribes again.
    let mine: Vec<String> = stack
        .connection_ids()
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(mine.len(), 1, "the echo client's connection: {mine:?}");
    let sdk = catalog_core::aws::clients::sdk_config().await;
    let endpoint = format!(
        "{}/_aws/execute-api/{}/{}",
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into()),
        stack.output("WebSocketApiId"),
        stack.output("WebSocketStageName")
    );
    catalog_core::aws::clients::management_client(&sdk, &endpoint)
        .delete_connection()
        .connection_id(&mine[0])
        .send()
        .await
        .expect("DeleteConnection");
    // Changes made while it is away reach it when it resumes.
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.extend(stack.run_generator().await);
    }
    ws.wait_for("ws-echo reconnected and resumed", |l| {
        l.iter()
            .filter(|l| l.contains("subscribed to every product") && l.contains("resumed"))
            .count()
            >= 1
    })
    .await;
    ws.wait_for("ws-echo printed what it missed", |l| {
        printed_each(l, &missed)
    })
    .await;
    // The SSE client resumes with Last-Event-ID when its session ends (scripts/test runs
    // the local stream with short sessions).
    sse.wait_for("sse-echo resumed", |l| {
        l.iter().any(|l| l.contains("after event"))
    })
    .await;

    let after = stack.run_generator().await;
    ws.wait_for("ws-echo printed the changes after reconnecting", |l| {
        printed_each(l, &after)
    })
    .await;
    sse.wait_for("sse-echo printed the changes after resuming", |l| {
        printed_each(l, &after)
    })
    .await;
    for change in missed.iter().chain(&changes).chain(&after) {
        let printed = ws
            .lines()
            .iter()
            .filter(|l| l.contains(&change.change_id))
            .count();
        assert_eq!(
            printed,
            1,
            "ws-echo printed {} once: {:?}",
            change.change_id,
            ws.lines()
        );
    }
    let sse_ids: Vec<LogPosition> = sse
        .lines()
        .iter()
        .filter_map(|l| {
            Some(e2e::log_position(
                l.strip_prefix('#')?.split_whitespace().next()?,
            ))
        })
        .collect();
    assert!(
        sse_ids.windows(2).all(|w| w[0].followed_by(&w[1])),
        "sse-echo saw every id once, in order: {sse_ids:?}"
    );
    drop(ws.child);
    drop(sse.child);
}

/// The cloud path of the stream: the sse-stream Lambda behind its function URL. MiniStack
/// hands a streamed response over only when the invocation ends, so the session is made
/// short here and the whole stream is read at once.
#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn the_sse_lambda_serves_the_same_events_through_its_function_url() {
    let stack = Stack::load().await;
    let url_id = stack
        .output("SseUrl")
        .split("://")
        .nth(1)
        .and_then(|host| host.split('.').next())
        .expect("a function URL host")
        .to_owned();
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let url = format!("{endpoint}/_aws/lambda-url/{url_id}/");
    let previous = stack
        .function_env("SseFunctionName", "SSE_SESSION_SECONDS")
        .await;
    stack
        .set_function_env("SseFunctionName", &[("SSE_SESSION_SECONDS", Some("2"))])
        .await;

    let head = stack.change_log_head().await;
    let published = stack.run_generator().await;
    for p in &published {
        eventually(&format!("{} applied", p.change_id), WAIT, || async {
            stack.product(&p.product_id).await.version >= p.version
        })
        .await;
    }
    let head_value = head.to_string();
    let response = e2e::http::get(&url, &[("last-event-id", &head_value)]).await;
    let refused = e2e::http::get(&url, &[("last-event-id", "yesterday")]).await;
    stack
        .set_function_env(
            "SseFunctionName",
            &[("SSE_SESSION_SECONDS", previous.as_deref())],
        )
        .await;

    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    let text = String::from_utf8_lossy(&response.body).to_string();
    let ids: Vec<LogPosition> = std::iter::once(head)
        .chain(
            text.lines()
                .filter_map(|l| Some(e2e::log_position(l.strip_prefix("id: ")?))),
        )
        .collect();
    assert!(ids.len() > 1, "{text}");
    assert!(
        ids.windows(2).all(|w| w[0].followed_by(&w[1])),
        "from the head on, one entry at a time: {ids:?}"
    );
    for p in &published {
        assert!(
            text.contains(&p.change_id),
            "{} is in the stream",
            p.change_id
        );
    }
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error"]["code"], "bad_request");
}
