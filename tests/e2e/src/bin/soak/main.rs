//! The soak: the deployed stack under a steady load for `SOAK_MINUTES` (default 30) while
//! faults are injected every few minutes, then an audit. scripts/soak deploys the stack and
//! runs this; it is a benchmark-style run, not part of scripts/test.
//!
//! Throughout the run:
//! - the generator is invoked `SOAK_RUNS_PER_SECOND` times a second (each run changes
//!   `ProductsPerRun` products);
//! - `SOAK_STAYERS` WebSocket clients stay connected (half subscribed to everything, half to
//!   ten products; a dropped one reconnects), and a new short-lived client arrives every
//!   `SOAK_CHURN_SECONDS`, subscribes to everything or a subset and leaves after 20–90 s,
//!   with a close frame or without one;
//! - `SOAK_SSE_READERS` SSE readers follow the stream and resume with `Last-Event-ID`
//!   whenever a session ends;
//! - a photo is uploaded every `SOAK_UPLOAD_SECONDS`, and a malformed message is put on the
//!   changes queue every `SOAK_POISON_SECONDS` (the only thing allowed in the DLQ);
//! - every `SOAK_FAULT_SECONDS` one fault, in turn: the consumer's processes killed while a
//!   batch is in flight, the management API answering 502 for 20 s, the emulator restarted
//!   with its persisted state.
//!
//! The audit prints one line per check and the totals, writes the figures as JSON to
//! `SOAK_REPORT` (when set) and exits non-zero when a check failed.

mod recovery;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalog_core::ports::LogPosition;
use chrono::{DateTime, Utc};
use e2e::sse::SseConnection;
use e2e::{env_or, percentile, png, ManagementFault, Published, Received, Stack, WsClient};
use recovery::FaultWindow;
use serde_json::{json, Value};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// A change published this soon after a client's subscription was acknowledged may have
/// been fanned out to the connection list read just before it.
const START_GRACE: chrono::Duration = chrono::Duration::seconds(2);
/// A change published this close to a client's departure may still have been on its way.
const END_GRACE: chrono::Duration = chrono::Duration::seconds(5);
/// The same near a fault: a management-API outage holds pushes back for its 20 s and the
/// redelivery after it (scripts/soak deploys a 10 s visibility timeout), a killed consumer's
/// batch waits out its visibility, a restarted emulator takes seconds to come back.
const END_GRACE_NEAR_A_FAULT: chrono::Duration = chrono::Duration::seconds(90);
const POISON_MARKER: &str = "soak-poison";

struct Settings {
    duration: Duration,
    runs_per_second: f64,
    stayers: usize,
    churn_every: Duration,
    sse_readers: usize,
    upload_every: Duration,
    poison_every: Duration,
    fault_every: Duration,
    process_bound: usize,
}

impl Settings {
    fn from_env() -> Self {
        Settings {
            duration: Duration::from_secs_f64(env_or("SOAK_MINUTES", 30.0) * 60.0),
            runs_per_second: env_or("SOAK_RUNS_PER_SECOND", 2.0),
            stayers: env_or("SOAK_STAYERS", 4),
            churn_every: Duration::from_secs_f64(env_or("SOAK_CHURN_SECONDS", 3.0)),
            sse_readers: env_or("SOAK_SSE_READERS", 2),
            upload_every: Duration::from_secs_f64(env_or("SOAK_UPLOAD_SECONDS", 20.0)),
            poison_every: Duration::from_secs_f64(env_or("SOAK_POISON_SECONDS", 120.0)),
            fault_every: Duration::from_secs_f64(env_or("SOAK_FAULT_SECONDS", 180.0)),
            process_bound: env_or("LAMBDA_ACCOUNT_CONCURRENCY", 64),
        }
    }
}

/// One change the generator reported, with when its invocation started and returned.
struct Change {
    published: Published,
    invoked: DateTime<Utc>,
    returned: DateTime<Utc>,
}

/// One WebSocket connection from its acknowledged subscription to its end.
struct Session {
    /// `None`: every product.
    products: Option<BTreeSet<String>>,
    acked: DateTime<Utc>,
    ended: DateTime<Utc>,
    ending: &'static str,
    frames: Vec<Received>,
}

/// What an SSE reader received across all its reconnections.
#[derive(Default)]
struct SseLog {
    events: Vec<(LogPosition, String, String)>,
    sessions: usize,
    failed_opens: usize,
}

struct MemorySample {
    at: Instant,
    emulator_mb: f64,
    bootstrap_mb: f64,
    bootstraps: usize,
}

#[derive(Default)]
struct Ledger {
    changes: Vec<Change>,
    generator_failures: Vec<String>,
    sessions: Vec<Session>,
    handshake_refusals: BTreeMap<String, usize>,
    faults: Vec<FaultWindow>,
    uploads: Vec<(String, u64)>,
    upload_refusals: Vec<u16>,
    poison: usize,
    memory: Vec<MemorySample>,
}

type Shared = Arc<Mutex<Ledger>>;

/// A WebSocket URL with a token of its own: a long soak outlives any one token.
fn ws_url(stack: &Stack) -> String {
    let token = catalog_core::auth::issue(stack.auth_secret.as_bytes(), "soak", 3600);
    format!("{}?token={token}", stack.ws_url_without_token)
}

/// Connects and subscribes, retrying refusals with backoff; `None` when it never got in
/// before `give_up`.
async fn subscribe(
    stack: &Stack,
    ledger: &Shared,
    products: &Option<BTreeSet<String>>,
    give_up: Instant,
) -> Option<(WsClient, DateTime<Utc>)> {
    let mut attempt = 0u32;
    while Instant::now() < give_up {
        attempt += 1;
        let backoff = Duration::from_millis((200u64 << attempt.min(5)) + fastrand::u64(0..200));
        let client = match WsClient::try_connect(&ws_url(stack), HANDSHAKE_TIMEOUT).await {
            Ok(client) => client,
            Err(refusal) => {
                *ledger
                    .lock()
                    .unwrap()
                    .handshake_refusals
                    .entry(format!("{refusal:?}"))
                    .or_default() += 1;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let frame = match products {
            Some(ids) => json!({"action": "subscribe", "productIds": ids}),
            None => json!({"action": "subscribe"}),
        };
        client.try_send(frame.to_string());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && client.is_open() {
            if client.frames().iter().any(|f| f["type"] == "subscribed") {
                return Some((client, Utc::now()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.abandon();
        tokio::time::sleep(backoff).await;
    }
    None
}

fn some_products(count: usize) -> BTreeSet<String> {
    let mut picked = BTreeSet::new();
    while picked.len() < count {
        picked.insert(format!("p-{:03}", fastrand::usize(1..=60)));
    }
    picked
}

/// A client that stays until `end`, reconnecting whenever its connection drops.
async fn stayer(
    stack: Arc<Stack>,
    ledger: Shared,
    products: Option<BTreeSet<String>>,
    end: Instant,
) {
    while Instant::now() < end {
        let Some((client, acked)) = subscribe(&stack, &ledger, &products, end).await else {
            return;
        };
        while Instant::now() < end && client.is_open() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let ending = if client.is_open() { "end" } else { "dropped" };
        let ended = Utc::now();
        let frames = client.frames_since(0);
        if ending == "end" {
            client.close().await;
        }
        ledger.lock().unwrap().sessions.push(Session {
            products: products.clone(),
            acked,
            ended,
            ending,
            frames,
        });
    }
}

/// A client that comes, subscribes, stays a while and leaves, with a close frame or not.
async fn visitor(stack: Arc<Stack>, ledger: Shared, end: Instant) {
    let products = (fastrand::bool()).then(|| some_products(fastrand::usize(1..=15)));
    let Some((client, acked)) = subscribe(&stack, &ledger, &products, end).await else {
        return;
    };
    let leave = Instant::now() + Duration::from_secs(fastrand::u64(20..=90));
    while Instant::now() < leave.min(end) && client.is_open() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ending, frames) = (
        if !client.is_open() {
            "dropped"
        } else if fastrand::bool() {
            "close"
        } else {
            "abandon"
        },
        client.frames_since(0),
    );
    let ended = Utc::now();
    match ending {
        "close" => client.close().await,
        _ => client.abandon(),
    }
    ledger.lock().unwrap().sessions.push(Session {
        products,
        acked,
        ended,
        ending,
        frames,
    });
}

/// Follows the SSE stream until `until` says stop, resuming with the last id it read.
async fn sse_reader(url: String, log: Arc<Mutex<SseLog>>, stop: Arc<tokio::sync::Notify>) {
    let mut stopped = std::pin::pin!(stop.notified());
    loop {
        let last = log.lock().unwrap().events.last().map(|e| e.0.clone());
        let connection = match SseConnection::try_open(&url, last.as_ref()).await {
            Ok(connection) => connection,
            Err(_) => {
                log.lock().unwrap().failed_opens += 1;
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        log.lock().unwrap().sessions += 1;
        let mut taken = 0;
        let finished = loop {
            let events = connection.events();
            log.lock()
                .unwrap()
                .events
                .extend(events[taken..].iter().cloned());
            taken = events.len();
            if connection.is_closed() {
                break false;
            }
            tokio::select! {
                _ = &mut stopped => break true,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        };
        let events = connection.events();
        log.lock()
            .unwrap()
            .events
            .extend(events[taken..].iter().cloned());
        connection.drop_connection();
        if finished {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `bootstrap` processes (one per running Lambda environment) as (pid, environment).
fn bootstraps() -> Vec<(String, String)> {
    e2e::bootstrap_pids()
        .into_iter()
        .map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&environ).into_owned())
        })
        .collect()
}

fn emulator_pid() -> Option<String> {
    let outputs = std::env::var("STACK_OUTPUTS").ok()?;
    let file = std::path::Path::new(&outputs).with_file_name("emulator.pid");
    Some(std::fs::read_to_string(file).ok()?.trim().to_owned())
}

fn sample_memory() -> MemorySample {
    let running = bootstraps();
    MemorySample {
        at: Instant::now(),
        emulator_mb: emulator_pid().map_or(0.0, |pid| rss_mb(&pid)),
        bootstrap_mb: running.iter().map(|(pid, _)| rss_mb(pid)).sum(),
        bootstraps: running.len(),
    }
}

/// Kills the consumer's processes while the changes queue has a batch in flight, as an
/// out-of-memory kill or a host failure would.
async fn kill_consumer_mid_batch(stack: &Stack) -> String {
    let function = format!(
        "AWS_LAMBDA_FUNCTION_NAME={}\0",
        stack.output("ConsumerFunctionName")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut in_flight = 0;
    while Instant::now() < deadline {
        in_flight = in_flight_changes(stack).await;
        if in_flight > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pids: Vec<String> = bootstraps()
        .into_iter()
        .filter(|(_, environ)| environ.contains(&function))
        .map(|(pid, _)| pid)
        .collect();
    for pid in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
    format!(
        "consumer killed ({} processes, {in_flight} messages in flight)",
        pids.len()
    )
}

async fn in_flight_changes(stack: &Stack) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    stack
        .sqs
        .get_queue_attributes()
        .queue_url(stack.output("ChangesQueueUrl"))
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()
        .and_then(|out| {
            out.attributes?
                .get(&A::ApproximateNumberOfMessagesNotVisible)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn restart_emulator_timed() -> String {
    let started = Instant::now();
    e2e::restart_emulator();
    format!(
        "emulator restarted ({:.1} s)",
        started.elapsed().as_secs_f64()
    )
}

/// Injects fault `number` (in turn: a crash, an outage, a restart); its kind and what happened.
async fn inject_fault(stack: &Stack, number: usize) -> (&'static str, String) {
    match number % 3 {
        0 => ("consumer killed", kill_consumer_mid_batch(stack).await),
        1 => {
            let fault = ManagementFault::on(502);
            tokio::time::sleep(Duration::from_secs(20)).await;
            drop(fault);
            (
                "management API outage",
                "management API answered 502 for 20 s".to_owned(),
            )
        }
        _ => (
            "emulator restart",
            tokio::task::block_in_place(restart_emulator_timed),
        ),
    }
}

/// A malformed message in a message group of its own, so it holds up neither a product's
/// changes nor the next poison while it uses up its receives.
async fn poison(stack: &Stack, number: usize) {
    let body = format!("{{\"{POISON_MARKER}\": {number}, \"not\": \"a ProductChanged\"}}");
    stack
        .send_to_changes_queue(&[(format!("{POISON_MARKER}-{number}"), body)])
        .await;
}

async fn upload(stack: &Stack, ledger: &Shared, number: usize) {
    let product = format!("p-{:03}", 1 + number % 60);
    let response = stack
        .upload_photo(&product, "image/png", &png(120, number as u8))
        .await;
    let mut ledger = ledger.lock().unwrap();
    if response.status == 202 {
        let version = response.json()["photoVersion"].as_u64().unwrap_or(0);
        ledger.uploads.push((product, version));
    } else {
        ledger.upload_refusals.push(response.status);
    }
}

/// A fault being injected: it answers its kind and what happened.
type FaultTask = tokio::task::JoinHandle<(&'static str, String)>;

/// Generator runs, uploads, poison, faults and memory samples until `end`.
async fn drive(stack: Arc<Stack>, ledger: Shared, settings: &Settings, end: Instant) {
    let started = Instant::now();
    let (mut runs, mut uploads, mut poisons, mut faults, mut samples, mut progress) =
        (0usize, 0, 0, 0, 0, 0);
    // Faults stop two minutes before the end, so the last one's redeliveries are audited too.
    let faults_until = end.checked_sub(Duration::from_secs(120)).unwrap_or(started);
    let run_every = Duration::from_secs_f64(1.0 / settings.runs_per_second);
    let mut fault_task: Option<(DateTime<Utc>, FaultTask)> = None;
    while Instant::now() < end {
        let now = Instant::now();
        let elapsed = now - started;
        if elapsed >= run_every.mul_f64(runs as f64) {
            runs += 1;
            let (stack, ledger) = (stack.clone(), ledger.clone());
            tokio::spawn(async move {
                let invoked = Utc::now();
                let result = stack.try_run_generator().await;
                let returned = Utc::now();
                let mut ledger = ledger.lock().unwrap();
                match result {
                    Ok(published) => ledger.changes.extend(published.into_iter().map(|p| Change {
                        published: p,
                        invoked,
                        returned,
                    })),
                    Err(e) => ledger.generator_failures.push(e),
                }
            });
        }
        if elapsed >= settings.upload_every.mul_f64(uploads as f64 + 0.5) {
            uploads += 1;
            let (stack, ledger) = (stack.clone(), ledger.clone());
            tokio::spawn(async move { upload(&stack, &ledger, uploads).await });
        }
        if elapsed >= settings.poison_every.mul_f64(poisons as f64 + 0.25) && now < faults_until {
            poisons += 1;
            poison(&stack, poisons).await;
            ledger.lock().unwrap().poison += 1;
        }
        if elapsed >= Duration::from_secs(5).mul_f64(samples as f64) {
            samples += 1;
            ledger.lock().unwrap().memory.push(sample_memory());
        }
        if fault_task.as_ref().is_some_and(|(_, t)| t.is_finished()) {
            let (started, task) = fault_task.take().unwrap();
            let (kind, what) = task.await.expect("fault task");
            eprintln!("soak: {:>5.0} s  {what}", elapsed.as_secs_f64());
            ledger.lock().unwrap().faults.push(FaultWindow {
                kind,
                started,
                ended: Utc::now(),
                what,
            });
        }
        if fault_task.is_none()
            && elapsed >= settings.fault_every.mul_f64(faults as f64 + 1.0)
            && now < faults_until
        {
            let stack = stack.clone();
            let number = faults;
            faults += 1;
            fault_task = Some((
                Utc::now(),
                tokio::spawn(async move { inject_fault(&stack, number).await }),
            ));
        }
        if elapsed >= Duration::from_secs(30).mul_f64(progress as f64) {
            progress += 1;
            let ledger = ledger.lock().unwrap();
            eprintln!(
                "soak: {:>5.0} s  {} changes published, {} sessions ended, {} faults",
                elapsed.as_secs_f64(),
                ledger.changes.len(),
                ledger.sessions.len(),
                ledger.faults.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some((started, task)) = fault_task {
        let (kind, what) = task.await.expect("fault task");
        ledger.lock().unwrap().faults.push(FaultWindow {
            kind,
            started,
            ended: Utc::now(),
            what,
        });
    }
}

/// One audit line.
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail,
    }
}

/// Each session's deliveries: what it should have received and whether it did (directly,
/// or a newer version of the same product: a change whose push failed during an outage
/// may be superseded before its redelivery, and then only the newer one is pushed).
fn audit_sessions(ledger: &Ledger) -> (Check, Check, Value) {
    let (mut expected, mut direct, mut superseded, mut lost, mut regressions) = (0, 0, 0, 0, 0);
    let mut latencies = Vec::new();
    let (mut lost_examples, mut regression_examples) = (Vec::new(), Vec::new());
    for session in &ledger.sessions {
        let mut received: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut received_ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for (frame, at) in &session.frames {
            if frame["type"] != "productChanged" {
                continue;
            }
            received
                .entry(frame["productId"].as_str().unwrap_or_default())
                .or_default()
                .push(frame["version"].as_u64().unwrap_or_default());
            ids.insert(frame["changeId"].as_str().unwrap_or_default());
            received_ids
                .entry(frame["productId"].as_str().unwrap_or_default())
                .or_default()
                .push(frame["changeId"].as_str().unwrap_or_default());
            if let Some(changed) = frame["changedAt"]
                .as_str()
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            {
                latencies.push((*at - changed).num_microseconds().unwrap_or(0) as f64 / 1000.0);
            }
        }
        for (product, versions) in &received {
            for (at, pair) in versions.windows(2).enumerate().filter(|(_, w)| w[1] < w[0]) {
                regressions += 1;
                if regression_examples.len() < 5 {
                    let ids = &received_ids[product];
                    regression_examples.push(format!(
                        "{product}: v{} ({}) then v{} ({}) ({} session, acked {}, ended {})",
                        pair[0],
                        ids[at],
                        pair[1],
                        ids[at + 1],
                        session.ending,
                        session.acked,
                        session.ended
                    ));
                }
            }
        }
        let fault_near = ledger
            .faults
            .iter()
            .any(|f| (f.ended - session.ended).num_seconds().abs() <= 90);
        let grace = if fault_near {
            END_GRACE_NEAR_A_FAULT
        } else {
            END_GRACE
        };
        for change in &ledger.changes {
            let p = &change.published;
            let wanted = session
                .products
                .as_ref()
                .is_none_or(|set| set.contains(&p.product_id));
            if !wanted
                || change.invoked < session.acked + START_GRACE
                || change.returned > session.ended - grace
            {
                continue;
            }
            expected += 1;
            if ids.contains(p.change_id.as_str()) {
                direct += 1;
            } else if received
                .get(p.product_id.as_str())
                .is_some_and(|vs| vs.iter().any(|v| *v > p.version))
            {
                superseded += 1;
            } else {
                lost += 1;
                if lost_examples.len() < 5 {
                    lost_examples.push(format!(
                        "{} v{} ({} session ended {})",
                        p.product_id, p.version, session.ending, session.ended
                    ));
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let figures = json!({
        "sessions": ledger.sessions.len(),
        "expected_deliveries": expected,
        "delivered": direct,
        "superseded": superseded,
        "lost": lost,
        "regressions": regressions,
        "latency_ms": {
            "receipts": latencies.len(),
            "p50": percentile(&latencies, 50.0),
            "p95": percentile(&latencies, 95.0),
            "p99": percentile(&latencies, 99.0),
            "max": latencies.last(),
        },
    });
    (
        check(
            "clients received every change for their products",
            lost == 0 && expected > 0,
            format!(
                "{} sessions; {expected} deliveries due: {direct} received, {superseded} superseded by a newer version, {lost} lost {lost_examples:?}",
                ledger.sessions.len()
            ),
        ),
        check(
            "no client saw a version go backwards",
            regressions == 0,
            format!("{regressions} regressions {regression_examples:?}"),
        ),
        figures,
    )
}

/// For each fault kind, from the fault's end until the changes it held reached their clients.
fn recovery_figures(ledger: &Ledger) -> Value {
    let mut last_receipt: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for session in &ledger.sessions {
        let mut first: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        for (frame, at) in &session.frames {
            if let Some(id) = frame["changeId"].as_str() {
                first.entry(id).or_insert(*at);
            }
        }
        for (id, at) in first {
            let last = last_receipt.entry(id).or_insert(at);
            *last = (*last).max(at);
        }
    }
    let published: Vec<(&str, DateTime<Utc>)> = ledger
        .changes
        .iter()
        .map(|c| (c.published.change_id.as_str(), c.returned))
        .collect();
    recovery::by_kind(&ledger.faults, &published, &last_receipt)
}

/// Every entry of the change log from where a reader started to the log's head, read
/// straight from the table: shard by shard, in sequence order.
async fn log_entries(stack: &Stack, head: &LogPosition) -> Vec<Vec<u64>> {
    use catalog_core::ports::ChangeLog;
    let log = stack.change_log().await;
    let mut shards = Vec::new();
    for (shard, &last) in head.0.iter().enumerate() {
        let (mut seqs, mut after) = (Vec::new(), 0);
        loop {
            let page = log
                .read_after(shard, after, last, 500)
                .await
                .expect("read the change log");
            let Some(end) = page.last().map(|e| e.seq) else {
                break;
            };
            seqs.extend(page.iter().map(|e| e.seq));
            after = end;
        }
        shards.push(seqs);
    }
    shards
}

/// What each reader got, shard by shard, must be exactly the log's entries after where it
/// started, in order: nothing twice, nothing skipped, across every resume. A sequence number
/// that was taken but never written (the consumer was killed between the counter and the
/// entry; its redelivery logs the change again under a new number) is not in the log, and
/// the stream passes it after its grace period: those are counted, not failed.
fn audit_sse(readers: &[SseLog], log: &[Vec<u64>], head: &LogPosition) -> (Check, Value) {
    let mut problems = Vec::new();
    let (mut events, mut sessions, mut holes) = (0, 0, 0);
    for (i, reader) in readers.iter().enumerate() {
        events += reader.events.len();
        sessions += reader.sessions;
        let Some(first) = reader.events.first() else {
            problems.push(format!("reader {i} received nothing"));
            continue;
        };
        // Per shard, the sequence numbers the reader received, in the order it got them.
        let mut got: Vec<Vec<u64>> = vec![Vec::new(); log.len()];
        let mut previous: Option<&LogPosition> = None;
        for (position, _, data) in &reader.events {
            let frame: Value = serde_json::from_str(data).unwrap_or_default();
            let shard = catalog_core::ports::shard_of(
                frame["productId"].as_str().unwrap_or_default(),
                log.len(),
            );
            got[shard].push(position.0[shard]);
            if let Some(previous) = previous {
                if !previous.followed_by(position) {
                    holes += 1;
                }
            }
            previous = Some(position);
        }
        for (shard, received) in got.iter().enumerate() {
            // Where the reader started in this shard: before its first event there.
            let start = if received.first() == Some(&first.0 .0[shard]) {
                received[0] - 1
            } else {
                first.0 .0[shard]
            };
            let due: Vec<u64> = log[shard].iter().copied().filter(|&s| s > start).collect();
            if *received != due {
                let twice = received.len() - received.iter().collect::<BTreeSet<_>>().len();
                let skipped = due.iter().filter(|s| !received.contains(s)).count();
                problems.push(format!(
                    "reader {i} shard {shard}: {} received, {} in the log after {start}; {twice} twice, {skipped} skipped",
                    received.len(),
                    due.len()
                ));
            }
        }
        if reader.events.last().map(|e| &e.0) != Some(head) {
            problems.push(format!("reader {i} did not reach the log's head {head}"));
        }
    }
    (
        check(
            "SSE readers resumed without a gap or a repeat",
            problems.is_empty() && events > 0,
            format!(
                "{} readers, {events} events over {sessions} sessions, {holes} unwritten sequence numbers passed; {} problems {:?}",
                readers.len(),
                problems.len(),
                problems.iter().take(5).collect::<Vec<_>>()
            ),
        ),
        json!({"readers": readers.len(), "events": events, "sessions": sessions, "holes_passed": holes, "problems": problems.len()}),
    )
}

async fn audit_products(stack: &Stack, ledger: &Ledger) -> Check {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = stack
            .dynamo
            .scan()
            .table_name(stack.output("ProductsTableName"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan products");
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    let number =
        |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
         name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
    let stored: BTreeMap<String, (u64, Option<u64>)> = items
        .iter()
        .filter_map(|item| {
            let id = item.get("productId")?.as_s().ok()?.clone();
            Some((
                id,
                (number(item, "version")?, number(item, "publishedVersion")),
            ))
        })
        .collect();
    let mut behind = Vec::new();
    for (id, (version, published)) in &stored {
        if published.is_some_and(|p| p != *version) {
            behind.push(format!(
                "{id}: v{version} stored, v{} published",
                published.unwrap()
            ));
        }
    }
    for change in &ledger.changes {
        let p = &change.published;
        if stored
            .get(&p.product_id)
            .is_none_or(|(v, _)| *v < p.version)
        {
            behind.push(format!("{} v{} never applied", p.product_id, p.version));
        }
    }
    // A version is one change: two change ids under one version would mean the generator
    // read versions older than it had already published.
    let mut ids_of_version: BTreeMap<(&str, u64), BTreeSet<&str>> = BTreeMap::new();
    for change in &ledger.changes {
        let p = &change.published;
        ids_of_version
            .entry((p.product_id.as_str(), p.version))
            .or_default()
            .insert(p.change_id.as_str());
    }
    let reused: Vec<String> = ids_of_version
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((product, version), ids)| format!("{product} v{version}: {ids:?}"))
        .collect();
    check(
        "every published change is in DynamoDB at its newest version",
        behind.is_empty() && reused.is_empty() && !ledger.changes.is_empty(),
        format!(
            "{} changes published to {} products; {} behind {:?}; {} versions published twice {:?}",
            ledger.changes.len(),
            stored.len(),
            behind.len(),
            behind.iter().take(5).collect::<Vec<_>>(),
            reused.len(),
            reused.iter().take(3).collect::<Vec<_>>()
        ),
    )
}

async fn audit_photos(stack: &Stack, ledger: &Ledger) -> Check {
    let mut missing = Vec::new();
    for (product, version) in &ledger.uploads {
        let key = catalog_core::ports::photos::thumb_key(product, *version);
        if !stack.object_exists(&key).await {
            missing.push(key);
        }
    }
    let dead = stack
        .queue_depth(stack.output("PhotoJobsDeadLetterQueueUrl"))
        .await;
    check(
        "every accepted photo upload has its thumbnail",
        missing.is_empty() && dead == 0 && !ledger.uploads.is_empty(),
        format!(
            "{} uploads accepted, {} refused during faults {:?}; {} thumbnails missing {:?}; {dead} in the photo-jobs DLQ",
            ledger.uploads.len(),
            ledger.upload_refusals.len(),
            ledger.upload_refusals,
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        ),
    )
}

async fn audit_dead_letters(stack: &Stack, ledger: &Ledger) -> Check {
    // Poison needs its receive count used up before it moves: wait for all of it.
    let deadline = Instant::now() + Duration::from_secs(240);
    while stack
        .queue_depth(stack.output("ChangesDeadLetterQueueUrl"))
        .await
        < ledger.poison as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let bodies = stack.dead_letters_containing("").await;
    let poison = bodies.iter().filter(|b| b.contains(POISON_MARKER)).count();
    let other: Vec<&String> = bodies
        .iter()
        .filter(|b| !b.contains(POISON_MARKER))
        .collect();
    check(
        "the changes DLQ holds exactly the injected poison",
        poison == ledger.poison && other.is_empty(),
        format!(
            "{} injected, {poison} in the DLQ, {} other messages {:?}",
            ledger.poison,
            other.len(),
            other.iter().take(3).collect::<Vec<_>>()
        ),
    )
}

async fn audit_connections(stack: &Stack, before: &BTreeSet<String>) -> Check {
    let left = stack
        .wait_for_connections_cleared(before, Duration::from_secs(120))
        .await;
    check(
        "no connection record leaked",
        left == 0,
        format!("{left} records of the soak's clients left"),
    )
}

fn audit_memory(ledger: &Ledger, process_bound: usize) -> (Check, Value) {
    let samples = &ledger.memory;
    let peak =
        |f: fn(&MemorySample) -> f64, part: &[MemorySample]| part.iter().map(f).fold(0.0, f64::max);
    let quarter = samples.len() / 4;
    let (first, last) = (&samples[..quarter], &samples[samples.len() - quarter..]);
    let emulator_peak = peak(|s| s.emulator_mb, samples);
    let bootstrap_peak = peak(|s| s.bootstrap_mb, samples);
    let most = samples.iter().map(|s| s.bootstraps).max().unwrap_or(0);
    let (first_peak, last_peak) = (
        peak(|s| s.emulator_mb, first),
        peak(|s| s.emulator_mb, last),
    );
    let growing = last_peak > first_peak * 1.5 + 128.0;
    let span = samples
        .last()
        .zip(samples.first())
        .map_or(0.0, |(l, f)| (l.at - f.at).as_secs_f64());
    (
        check(
            "the emulator's and functions' memory stayed bounded",
            most <= process_bound && !growing && !samples.is_empty(),
            format!(
                "{} samples over {span:.0} s; emulator peak {emulator_peak:.0} MB (first quarter {first_peak:.0}, last quarter {last_peak:.0}); \
                 functions peak {bootstrap_peak:.0} MB in at most {most} processes (bound {process_bound})",
                samples.len()
            ),
        ),
        json!({
            "emulator_peak_mb": emulator_peak,
            "emulator_first_quarter_peak_mb": first_peak,
            "emulator_last_quarter_peak_mb": last_peak,
            "functions_peak_mb": bootstrap_peak,
            "most_function_processes": most,
        }),
    )
}

#[tokio::main]
async fn main() {
    let settings = Settings::from_env();
    let stack = Arc::new(Stack::load().await);
    let ledger: Shared = Arc::default();
    let connections_before: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
    let started = Instant::now();
    let end = started + settings.duration;
    eprintln!(
        "soak: {:.0} min, {} generator runs/s, {} stayers, a visitor every {:?}, {} SSE readers, a fault every {:?}",
        settings.duration.as_secs_f64() / 60.0,
        settings.runs_per_second,
        settings.stayers,
        settings.churn_every,
        settings.sse_readers,
        settings.fault_every
    );

    let stop_sse = Arc::new(tokio::sync::Notify::new());
    let readers: Vec<Arc<Mutex<SseLog>>> =
        (0..settings.sse_readers).map(|_| Arc::default()).collect();
    let reader_tasks: Vec<_> = readers
        .iter()
        .map(|log| {
            tokio::spawn(sse_reader(
                stack.sse_url.clone(),
                log.clone(),
                stop_sse.clone(),
            ))
        })
        .collect();
    let mut clients: Vec<tokio::task::JoinHandle<()>> = (0..settings.stayers)
        .map(|i| {
            let products = (i % 2 == 1).then(|| some_products(10));
            tokio::spawn(stayer(stack.clone(), ledger.clone(), products, end))
        })
        .collect();
    let churn = {
        let (stack, ledger, every) = (stack.clone(), ledger.clone(), settings.churn_every);
        tokio::spawn(async move {
            let mut visitors = Vec::new();
            while Instant::now() + Duration::from_secs(20) < end {
                visitors.push(tokio::spawn(visitor(stack.clone(), ledger.clone(), end)));
                tokio::time::sleep(every).await;
            }
            visitors
        })
    };

    drive(stack.clone(), ledger.clone(), &settings, end).await;
    clients.extend(churn.await.expect("churn"));
    for client in clients {
        client.await.expect("client task");
    }
    eprintln!(
        "soak: load stopped after {:.0} s; draining",
        started.elapsed().as_secs_f64()
    );
    stack
        .wait_for_drained_changes_queue(Duration::from_secs(300))
        .await;
    stack
        .wait_for_drained_queue("PhotoJobsQueueUrl", Duration::from_secs(300))
        .await;
    // The readers catch up with the log's head, then stop.
    let head = stack.change_log_head().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && readers
            .iter()
            .any(|r| r.lock().unwrap().events.last().map(|e| &e.0) != Some(&head))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_sse.notify_waiters();
    for task in reader_tasks {
        task.await.expect("SSE reader");
    }

    // Every task that wrote to it has finished.
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(|e| e.into_inner()));
    let readers: Vec<SseLog> = readers
        .into_iter()
        .map(|r| std::mem::take(&mut *r.lock().unwrap()))
        .collect();
    let (deliveries, regressions, client_figures) = audit_sessions(&ledger);
    let log = log_entries(&stack, &head).await;
    let (sse, sse_figures) = audit_sse(&readers, &log, &head);
    let (memory, memory_figures) = audit_memory(&ledger, settings.process_bound);
    let checks = vec![
        audit_products(&stack, &ledger).await,
        deliveries,
        regressions,
        sse,
        audit_photos(&stack, &ledger).await,
        audit_dead_letters(&stack, &ledger).await,
        audit_connections(&stack, &connections_before).await,
        memory,
    ];
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!("soak audit after {minutes:.1} min:");
    for c in &checks {
        println!(
            "  {} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    let faults: Vec<String> = ledger
        .faults
        .iter()
        .map(|f| format!("{}: {}", f.ended, f.what))
        .collect();
    let recovery = recovery_figures(&ledger);
    println!(
        "totals: {} changes published ({:.1}/s), {} generator runs refused during faults, {} client sessions, {} handshake refusals {:?}, {} faults, {} poison, {} photo uploads; {} of {} checks passed",
        ledger.changes.len(),
        ledger.changes.len() as f64 / settings.duration.as_secs_f64(),
        ledger.generator_failures.len(),
        ledger.sessions.len(),
        ledger.handshake_refusals.values().sum::<usize>(),
        ledger.handshake_refusals,
        faults.len(),
        ledger.poison,
        ledger.uploads.len(),
        checks.len() - failed,
        checks.len()
    );
    for fault in &faults {
        println!("  fault {fault}");
    }
    let report = json!({
        "minutes": minutes,
        "changes": ledger.changes.len(),
        "changes_per_second": ledger.changes.len() as f64 / settings.duration.as_secs_f64(),
        "generator_runs_refused": ledger.generator_failures.len(),
        "handshake_refusals": ledger.handshake_refusals,
        "clients": client_figures,
        "sse": sse_figures,
        "memory": memory_figures,
        "faults": faults,
        "recovery": recovery,
        "poison": ledger.poison,
        "uploads": ledger.uploads.len(),
        "checks": checks.iter().map(|c| json!({"name": c.name, "passed": c.passed, "detail": c.detail})).collect::<Vec<_>>(),
    });
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap())
            .expect("write the report");
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
