//! A connection storm on the emulator: many clients open a WebSocket within a few seconds.
//! Every one is either accepted or told why (an HTTP status on the handshake, never a
//! silent time-out); a refused client retries with backoff as a real one does; every
//! accepted client receives the next change; once all have closed no connection record is
//! left; the number of function processes stays within the local stack's bound; and the
//! machine's memory returns to its level before the storm within the emulator's warm period.
//!
//! `STORM_CLIENTS` (default 200) and `STORM_SECONDS` (default clients / 100) size it;
//! scripts/test runs the default and scripts/soak 1,000 clients in 10 s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{env_or, Refusal, Stack, WsClient};
use serde_json::Value;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
const ATTEMPTS: u32 = 8;
const SUBSCRIBE_ATTEMPTS: u32 = 12;
/// Available memory moves with everything else on the machine (page cache, the test
/// itself); what the storm must give back is its processes, hundreds of MB at 1,000 clients.
const MEMORY_TOLERANCE_MIB: u64 = 256;

/// MiB of memory available on the machine.
fn available_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// How one client's connection went.
struct Outcome {
    client: Option<WsClient>,
    /// Every attempt that was refused, in order.
    refusals: Vec<Refusal>,
}

/// Connects, retrying a refusal with jittered exponential backoff; a time-out is not retried.
async fn connect_with_backoff(url: String, seed: u64) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut refusals = Vec::new();
    for attempt in 0..ATTEMPTS {
        match WsClient::try_connect(&url, HANDSHAKE_TIMEOUT).await {
            Ok(client) => {
                return Outcome {
                    client: Some(client),
                    refusals,
                }
            }
            Err(refusal) => {
                let retry = matches!(refusal, Refusal::Status(_));
                refusals.push(refusal);
                if !retry {
                    break;
                }
                let backoff = 100u64 << attempt.min(5);
                tokio::time::sleep(Duration::from_millis(backoff + rng.u64(0..backoff))).await;
            }
        }
    }
    Outcome {
        client: None,
        refusals,
    }
}

/// Subscribes to everything; a frame the gateway refused (throttled) is sent again after a
/// jittered backoff. Returns the refusals it got, or all the frames if it never got an ack.
async fn subscribe_with_retry(client: &WsClient, seed: u64) -> Result<usize, Vec<Value>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    for attempt in 0..SUBSCRIBE_ATTEMPTS {
        let before = client.frames().len();
        client.send(r#"{"action":"subscribe"}"#);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && client.frames().len() == before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if client
            .frames()
            .iter()
            .skip(before)
            .any(|f| f["type"] == "subscribed")
        {
            return Ok(attempt as usize);
        }
        let backoff = 100u64 << attempt.min(5);
        tokio::time::sleep(Duration::from_millis(backoff + rng.u64(0..backoff))).await;
    }
    Err(client.frames())
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_connection_storm_is_accepted_or_refused_with_a_status_and_leaves_nothing_behind() {
    let stack = Stack::load().await;
    let clients: usize = env_or("STORM_CLIENTS", 200);
    let spread = Duration::from_secs_f64(env_or("STORM_SECONDS", clients as f64 / 100.0));
    let process_bound: usize = env_or("LAMBDA_ACCOUNT_CONCURRENCY", 64);
    let earlier: BTreeSet<String> = stack.connection_ids().await.into_iter().collect();
    let memory_before = available_mib();

    // Sample the machine while the storm runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let (mut lowest_mib, mut most_processes) = (u64::MAX, 0);
            while sampling.load(Ordering::Relaxed) {
                lowest_mib = lowest_mib.min(available_mib());
                most_processes = most_processes.max(e2e::bootstrap_pids().len());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (lowest_mib, most_processes)
        })
    };

    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let url = stack.ws_url.clone();
            let at = spread.mul_f64(i as f64 / clients as f64);
            tokio::spawn(async move {
                tokio::time::sleep(at).await;
                connect_with_backoff(url, i as u64).await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("client task"));
    }
    let connected_in = started.elapsed();

    let mut refusals_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for refusal in outcomes.iter().flat_map(|o| &o.refusals) {
        *refusals_by_kind.entry(format!("{refusal:?}")).or_default() += 1;
    }
    let first_try = outcomes
        .iter()
        .filter(|o| o.client.is_some() && o.refusals.is_empty())
        .count();
    let accepted: Vec<WsClient> = outcomes.into_iter().filter_map(|o| o.client).collect();
    eprintln!(
        "storm: {clients} clients over {spread:?}: {} accepted ({first_try} at the first try) in {connected_in:.1?}; refusals {refusals_by_kind:?}",
        accepted.len()
    );
    assert!(
        refusals_by_kind.keys().all(|k| k.starts_with("Status(")),
        "every refused handshake carries an HTTP status, none times out: {refusals_by_kind:?}"
    );
    assert!(
        !accepted.is_empty(),
        "some clients got through: {refusals_by_kind:?}"
    );

    let subscribed = futures::future::join_all(
        accepted
            .iter()
            .enumerate()
            .map(|(i, c)| subscribe_with_retry(c, i as u64)),
    )
    .await;
    let refused_frames: usize = subscribed.iter().filter_map(|r| r.as_ref().ok()).sum();
    let never: Vec<&Vec<Value>> = subscribed.iter().filter_map(|r| r.as_ref().err()).collect();
    eprintln!(
        "storm: {} subscriptions acknowledged; {refused_frames} subscribe frames refused by the gateway and sent again",
        subscribed.len() - never.len()
    );
    assert!(
        never.is_empty(),
        "{} accepted clients never got their subscription acknowledged; the first one's frames: {:?}",
        never.len(),
        never.first()
    );
    // The next change reaches every accepted client.
    let published = stack.run_generator().await;
    assert!(!published.is_empty());
    for (i, client) in accepted.iter().enumerate() {
        client
            .wait_for(
                &format!("client {i}: the next change"),
                Duration::from_secs(60),
                |frames| {
                    published
                        .iter()
                        .all(|p| frames.iter().any(|f| f["changeId"] == p.change_id.as_str()))
                },
            )
            .await;
    }

    // Half leave with a close frame, half just vanish; a record whose $disconnect did not
    // run (or was throttled) is removed by the 410 of the next push.
    for (i, client) in accepted.into_iter().enumerate() {
        if i % 2 == 0 {
            client.close().await;
        } else {
            client.abandon();
        }
    }
    let left = stack
        .wait_for_connections_cleared(&earlier, Duration::from_secs(120))
        .await;
    assert_eq!(left, 0, "no connection record of the storm is left");

    sampling.store(false, Ordering::Relaxed);
    let (lowest_mib, most_processes) = sampler.await.expect("sampler");

    // The processes the storm started idle out within the emulator's warm period, and the
    // memory they held comes back.
    let warm_period = Duration::from_secs(env_or("LAMBDA_WARM_TTL_SECONDS", 300) + 30);
    let returned_from = Instant::now();
    let back = || available_mib() + MEMORY_TOLERANCE_MIB >= memory_before;
    while !back() && returned_from.elapsed() < warm_period {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let memory_after = available_mib();
    eprintln!(
        "storm: most bootstrap processes {most_processes} (bound {process_bound}); memory available {memory_before} MiB before, \
         {lowest_mib} MiB at the lowest, {memory_after} MiB {:.0} s after the last client left",
        returned_from.elapsed().as_secs_f64()
    );
    assert!(
        back(),
        "the machine's memory returned within the warm period ({warm_period:?}): {memory_before} MiB available before, {memory_after} MiB after"
    );
    assert!(
        most_processes <= process_bound,
        "the emulator's processes stayed within the account concurrency: {most_processes} > {process_bound}"
    );
}
