//! The functions as cargo-lambda runs them (`cargo lambda watch` + `cargo lambda invoke`),
//! against the deployed stack's tables: the inner loop Rust Lambda users know. scripts/test
//! runs this suite when cargo-lambda is installed (`scripts/setup --with-cargo-lambda`) and
//! says SKIPPED when it isn't.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use e2e::sse::SseConnection;
use e2e::Stack;
use serde_json::Value;
use tokio::process::{Child, Command};

const PORT: u16 = 9311;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo lambda watch` on PORT with every function's environment from the running stack.
async fn watch() -> Child {
    let env_file = std::env::var("LAMBDA_ENV_FILE")
        .expect("LAMBDA_ENV_FILE: the all.env scripts/lambda-env writes");
    let port = PORT.to_string();
    let child = Command::new("cargo")
        .args([
            "lambda",
            "watch",
            "--env-file",
            &env_file,
            "-A",
            "127.0.0.1",
            "-P",
            &port,
        ])
        // Sessions shorter than the wait below, long enough to prove events stream before the end.
        .args(["--env-var", "SSE_SESSION_SECONDS=40"])
        .current_dir(root())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("cargo lambda watch starts (is cargo-lambda on PATH?)");
    e2e::eventually(
        "cargo lambda watch listening",
        Duration::from_secs(60),
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", PORT))
                .await
                .is_ok()
        },
    )
    .await;
    child
}

/// `cargo lambda invoke FUNCTION --data-file FILE`; the first call compiles the function.
async fn invoke(function: &str, data_file: &str) -> Value {
    let port = PORT.to_string();
    let output = Command::new("cargo")
        .args(["lambda", "invoke", function, "--data-file", data_file])
        .args(["-A", "127.0.0.1", "-P", &port])
        .current_dir(root())
        .output()
        .await
        .expect("cargo lambda invoke runs");
    assert!(
        output.status.success(),
        "cargo lambda invoke {function} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the function's JSON answer")
}

#[tokio::test]
#[ignore = "needs the deployed stack and cargo-lambda: scripts/test runs it when cargo-lambda is installed"]
async fn cargo_lambda_runs_the_rest_api_and_streams_sse_through_a_function_url() {
    let stack = Stack::load().await;
    let _watch = watch().await;

    let answer = invoke("rest-api", "events/rest-api/get-product.json").await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let product: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(product["productId"], "p-001");
    assert_eq!(
        product["version"].as_u64().unwrap(),
        stack.product("p-001").await.version,
        "the function read the deployed table"
    );

    // The SSE function behind watch's function URL, with real response streaming: the
    // changes arrive while the 40 s session is still open.
    let head = stack.change_log_head().await;
    let url = format!("http://127.0.0.1:{PORT}/lambda-url/sse-stream/");
    // The first request compiles the function; a refused one comes back at once after that.
    let refused = e2e::http::get(&url, &[("last-event-id", "yesterday")]).await;
    assert_eq!(
        refused.status,
        400,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    let sse = SseConnection::open(&url, Some(&head)).await;
    let published = stack.run_generator().await;
    sse.wait_for_changes_within(&published, Duration::from_secs(25))
        .await;
}
