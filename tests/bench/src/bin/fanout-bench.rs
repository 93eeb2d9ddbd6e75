//! Fan-out through a real HTTP endpoint: the consumer's real management-API pusher (the
//! SDK's PostToConnection) against a loopback `@connections` endpoint that forwards each
//! POST as a WebSocket frame to loopback clients. Measures, for N connected clients, the
//! time from the handler's start to the last client's frame, and the consumer process's
//! peak memory. Prints JSON.
//!
//!   fanout-bench [rounds=15] [N...]      default N: 1000 10000
//!   fanout-bench --serve PORT            only the endpoint (and its clients), for measuring anything else
//!
//! Three processes, so neither the clients' memory is counted as the consumer's nor 10,000
//! clients and their 10,000 server-side sockets share one process's open-file limit: this
//! one (the consumer), the endpoint (`--serve`) and the clients (`--clients`, which the
//! endpoint starts). `--serve` prints two lines:
//!   @connections base: http://127.0.0.1:PORT/bench   POST {base}/@connections/{id}: the body goes to client {id}; 410 if unknown
//!   control: http://127.0.0.1:PORT2                   the clients:
//!     POST /clients?n=N                       connects N loopback WebSocket clients; answers their ids (JSON)
//!     DELETE /clients                         closes them
//!     GET  /received?at_least=N&timeout_ms=T  waits for N frames in all; answers
//!                                             {"received": n, "first_us": t, "last_us": t} (epoch µs), then resets

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bench::{batches, consumer_with, peak_rss_mb, percentile, process_cpu_ms};
use catalog_core::aws::ManagementApiPusher;
use futures::StreamExt;
use tokio::sync::{mpsc, Notify};

fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The `@connections` side: one sender per connected client.
#[derive(Default)]
struct Endpoint {
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
}

/// The clients' side: their reader tasks and what they received.
#[derive(Default)]
struct Clients {
    endpoint_port: u16,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    next_id: AtomicUsize,
    received: AtomicUsize,
    first_us: AtomicU64,
    last_us: AtomicU64,
    changed: Notify,
}

async fn post_to_connection(
    State(endpoint): State<Arc<Endpoint>>,
    Path((_stage, id)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    let sender = endpoint.sockets.lock().unwrap().get(&id).cloned();
    match sender.map(|s| s.send(body)) {
        Some(Ok(())) => StatusCode::OK,
        _ => StatusCode::GONE,
    }
}

async fn upgrade(
    State(endpoint): State<Arc<Endpoint>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> impl IntoResponse {
    // Registered before the handshake answers, so a POST right after it finds the client.
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    endpoint.sockets.lock().unwrap().insert(id.clone(), tx);
    ws.on_upgrade(move |socket: WebSocket| async move {
        let (mut sink, mut stream) = socket.split();
        use futures::SinkExt;
        loop {
            tokio::select! {
                frame = rx.recv() => match frame {
                    Some(text) => if sink.send(Message::Text(text.into())).await.is_err() { break },
                    None => break,
                },
                incoming = stream.next() => if !matches!(incoming, Some(Ok(_))) { break },
            }
        }
        endpoint.sockets.lock().unwrap().remove(&id);
    })
}

async fn open_clients(
    State(clients): State<Arc<Clients>>,
    Query(query): Query<HashMap<String, usize>>,
) -> Json<Vec<String>> {
    let n = query.get("n").copied().unwrap_or(1);
    let port = clients.endpoint_port;
    let ids: Vec<String> = (0..n)
        .map(|_| format!("c{}", clients.next_id.fetch_add(1, Ordering::Relaxed)))
        .collect();
    let sockets: Vec<_> = futures::stream::iter(ids.clone())
        .map(|id| async move {
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/{id}"))
                .await
                .expect("loopback client connects")
                .0
        })
        .buffer_unordered(200)
        .collect()
        .await;
    let tasks: Vec<tokio::task::JoinHandle<()>> = sockets
        .into_iter()
        .map(|socket| {
            let clients = clients.clone();
            tokio::spawn(async move {
                let (_sink, mut stream) = socket.split();
                while let Some(Ok(frame)) = stream.next().await {
                    if frame.is_text() {
                        let now = epoch_us();
                        let _ = clients.first_us.compare_exchange(
                            0,
                            now,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        clients.last_us.fetch_max(now, Ordering::SeqCst);
                        clients.received.fetch_add(1, Ordering::SeqCst);
                        clients.changed.notify_waiters();
                    }
                }
            })
        })
        .collect();
    clients.tasks.lock().unwrap().extend(tasks);
    Json(ids)
}

async fn close_clients(State(clients): State<Arc<Clients>>) -> StatusCode {
    for client in clients.tasks.lock().unwrap().drain(..) {
        client.abort();
    }
    StatusCode::NO_CONTENT
}

async fn received(
    State(endpoint): State<Arc<Clients>>,
    Query(query): Query<HashMap<String, u64>>,
) -> Json<serde_json::Value> {
    let wanted = query.get("at_least").copied().unwrap_or(0) as usize;
    let deadline =
        Instant::now() + Duration::from_millis(query.get("timeout_ms").copied().unwrap_or(30_000));
    while endpoint.received.load(Ordering::SeqCst) < wanted && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(20), endpoint.changed.notified()).await;
    }
    let report = serde_json::json!({
        "received": endpoint.received.swap(0, Ordering::SeqCst),
        "first_us": endpoint.first_us.swap(0, Ordering::SeqCst),
        "last_us": endpoint.last_us.swap(0, Ordering::SeqCst),
    });
    Json(report)
}

/// A helper process ends with the process that started it, however that one ends.
fn die_with_parent() {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and changes nothing else.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value; failure leaves the limit as it was.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            let wanted = limit.rlim_max.max(65_536);
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: wanted,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
        }
    }
}

/// Starts this program again in another mode and reads the first line it prints.
fn spawn_self(args: &[&str], prefix: &str) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a helper process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the helper prints where it listens");
    let value = line
        .trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
        .to_owned();
    (child, value)
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

async fn serve(port: u16) {
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the endpoint");
    let port = listener.local_addr().expect("address").port();
    let (mut clients, control) = spawn_self(&["--clients", &port.to_string()], "control: ");
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(post_to_connection))
        .route("/ws/{id}", get(upgrade))
        .with_state(Arc::new(Endpoint::default()));
    println!("@connections base: http://127.0.0.1:{port}/bench");
    println!("control: {control}");
    eprintln!(
        "serving the loopback @connections endpoint on 127.0.0.1:{port}; clients at {control}"
    );
    axum::serve(listener, app).await.expect("serve");
    let _ = clients.kill();
    let _ = clients.wait();
}

async fn serve_clients(endpoint_port: u16) {
    die_with_parent();
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind the control port");
    let port = listener.local_addr().expect("address").port();
    let app = Router::new()
        .route("/clients", post(open_clients).delete(close_clients))
        .route("/received", get(received))
        .with_state(Arc::new(Clients {
            endpoint_port,
            ..Clients::default()
        }));
    println!("control: http://127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}

/// A small HTTP/1.1 request to the endpoint's control routes.
async fn control(port: u16, method: &str, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the endpoint");
    stream
        .write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    let text = String::from_utf8_lossy(&reply);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

async fn measure(rounds: usize, sizes: &[usize]) -> serde_json::Value {
    // The endpoint in a child process, which starts the clients in another.
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .args(["--serve", "0"])
        .env("FANOUT_BENCH_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the endpoint");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next_line = |prefix: &str| {
        let line = lines.next().expect("a line").expect("readable");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
            .to_owned()
    };
    let base = next_line("@connections base: ");
    let port = port_of(&next_line("control: "));

    let sdk = catalog_core::aws::clients::sdk_config().await;
    let pusher =
        ManagementApiPusher::new(catalog_core::aws::clients::management_client(&sdk, &base));
    let push_concurrency: usize = std::env::var("PUSH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut report = serde_json::Map::new();
    for &n in sizes {
        // A fresh consumer per size: its changes start again at version 1, which the
        // previous size's store would have taken as stale and not pushed.
        let consumer = consumer_with(10, 0, pusher.clone(), push_concurrency).await;
        let ids = control(port, "POST", &format!("/clients?n={n}")).await;
        let ids: Vec<String> = serde_json::from_value(ids).expect("client ids");
        for id in &ids {
            use catalog_core::ports::ConnectionStore;
            consumer
                .connections
                .add(id, 0, i64::MAX)
                .await
                .expect("add");
        }
        let mut samples = Vec::new();
        let mut cpu_samples = Vec::new();
        let work = batches(10, rounds + 1, 1);
        for (round, batch) in work.into_iter().enumerate() {
            let started_us = epoch_us();
            let cpu_before = process_cpu_ms();
            let (response, counts) = consumer.handle_batch(batch).await;
            let cpu_ms = process_cpu_ms() - cpu_before;
            assert!(response.batch_item_failures.is_empty(), "{counts:?}");
            let got = control(
                port,
                "GET",
                &format!("/received?at_least={n}&timeout_ms=60000"),
            )
            .await;
            assert_eq!(
                got["received"].as_u64(),
                Some(n as u64),
                "every client got the frame"
            );
            let ms = (got["last_us"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(started_us)) as f64
                / 1000.0;
            if round > 0 {
                // The first round warms the HTTP connection pool.
                samples.push(ms);
                cpu_samples.push(cpu_ms);
            }
        }
        samples.sort_by(f64::total_cmp);
        cpu_samples.sort_by(f64::total_cmp);
        report.insert(
            format!("connections_{n}"),
            serde_json::json!({
                "connections": n,
                "rounds": samples.len(),
                "push_concurrency": push_concurrency,
                "p50_ms": percentile(&samples, 50.0),
                "p99_ms": percentile(&samples, 99.0),
                "max_ms": samples.last(),
                "consumer_peak_rss_mb": peak_rss_mb(),
                "consumer_cpu_p50_ms": percentile(&cpu_samples, 50.0),
            }),
        );
        control(port, "DELETE", "/clients").await;
    }
    let _ = child.kill();
    let _ = child.wait();
    serde_json::Value::Object(report)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let helper = matches!(
        args.first().map(String::as_str),
        Some("--serve" | "--clients")
    );
    // The consumer side runs as the consumer function does (one thread); the endpoint and
    // its clients stand in for API Gateway and the internet, and use every core.
    let runtime = if helper {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Vec<String>) {
    let port_arg = || args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    match args.first().map(String::as_str) {
        Some("--serve") => {
            if std::env::var_os("FANOUT_BENCH_CHILD").is_some() {
                die_with_parent();
            }
            return serve(port_arg()).await;
        }
        Some("--clients") => return serve_clients(port_arg()).await,
        _ => {}
    }
    let rounds = args.first().and_then(|a| a.parse().ok()).unwrap_or(15);
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| a.parse().expect("a client count"))
            .collect()
    } else {
        vec![1000, 10_000]
    };
    println!("{}", measure(rounds, &sizes).await);
}
