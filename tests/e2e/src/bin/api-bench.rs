//! REST API latency on the deployed stack, as a client sees it (HTTP API → rest-api λ → …):
//! the photo redirect on a presigned-URL cache miss (first request per photo) and hit
//! (later requests), the 304 answer to `If-None-Match`, a product, and a catalogue page,
//! beside two floors: the emulator's own HTTP answer and a request our function refuses
//! before calling anything.
//! Prints one JSON object; scripts/bench puts it in BENCHMARKS.md.
//!
//! Usage: api-bench [rounds=5]   (STACK_OUTPUTS, REST_URL, WS_URL, AUTH_TOKEN_SECRET as for the e2e tests)

use std::time::Instant;

use e2e::{http, Stack};
use serde_json::json;

fn summary(mut samples: Vec<f64>) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| samples[((p / 100.0) * (samples.len() as f64 - 1.0)).round() as usize];
    json!({"n": samples.len(), "p50_ms": at(50.0), "p95_ms": at(95.0)})
}

async fn timed(url: &str, headers: &[(&str, &str)], expect: u16) -> (f64, http::HttpResponse) {
    let started = Instant::now();
    let response = http::get(url, headers).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(response.status, expect, "{url}");
    (ms, response)
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("rounds is a number"));
    let stack = Stack::load().await;
    let base = &stack.rest_url;
    let ids: Vec<String> = (1..=60).map(|i| format!("p-{i:03}")).collect();
    // Warm the function once so the first miss is not also a cold start.
    timed(&format!("{base}/products/p-001"), &[], 200).await;

    let (mut miss, mut hit, mut not_modified, mut product, mut page) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The floors under every figure: the emulator answering HTTP by itself (its health
    // route, no Lambda), and a request that reaches the rest-api function but is refused
    // before any downstream call (`limit=0`: the emulator's HTTP API, Lambda dispatch,
    // lambda_http and our routing, nothing else).
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".into());
    let (mut emulator_floor, mut function_floor) = (Vec::new(), Vec::new());
    for _ in 0..(rounds * 60) {
        emulator_floor.push(
            timed(&format!("{endpoint}/_localstack/health"), &[], 200)
                .await
                .0,
        );
        function_floor.push(timed(&format!("{base}/products?limit=0"), &[], 400).await.0);
    }
    let mut etags = Vec::new();
    for id in &ids {
        let (ms, response) = timed(&format!("{base}/products/{id}/photo"), &[], 302).await;
        assert_eq!(
            response.header("x-presign-cache"),
            Some("miss"),
            "{id}: expected a cache miss"
        );
        miss.push(ms);
        etags.push(response.header("etag").unwrap().to_owned());
    }
    for _ in 0..rounds {
        for (id, etag) in ids.iter().zip(&etags) {
            let url = format!("{base}/products/{id}/photo");
            let (ms, response) = timed(&url, &[], 302).await;
            assert_eq!(response.header("x-presign-cache"), Some("hit"));
            hit.push(ms);
            not_modified.push(timed(&url, &[("if-none-match", etag)], 304).await.0);
            product.push(timed(&format!("{base}/products/{id}"), &[], 200).await.0);
        }
        page.push(
            timed(&format!("{base}/products?limit=20"), &[], 200)
                .await
                .0,
        );
    }
    // The work the cache saves, in process: signing a GET URL (what a miss does) against a
    // cache lookup (what a hit does), per call.
    let bucket =
        catalog_core::aws::S3Photos::new(stack.s3.clone(), stack.output("PhotosBucketName"));
    let cache = catalog_core::presign::presign_cache_from(900);
    let calls = 2000;
    let started = Instant::now();
    for i in 0..calls {
        use catalog_core::ports::PhotoBucket;
        let key = format!("photos/original/p-{:03}.png", i % 60);
        let url = bucket.presign_get(&key, cache.ttl).await.unwrap();
        cache.store(&key, url, Instant::now());
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    let started = Instant::now();
    for i in 0..calls {
        let key = format!("photos/original/p-{:03}.png", i % 60);
        assert!(cache.lookup(&key, Instant::now()).is_some());
    }
    let lookup_us = started.elapsed().as_secs_f64() * 1e6 / calls as f64;
    let p50 = |v: &Vec<f64>| summary(v.clone())["p50_ms"].as_f64().unwrap();
    println!(
        "{}",
        json!({
            "emulator_floor": summary(emulator_floor),
            "function_floor": summary(function_floor),
            "photo_miss": summary(miss.clone()),
            "photo_hit": summary(hit.clone()),
            "photo_304": summary(not_modified.clone()),
            "product": summary(product),
            "page_of_20": summary(page),
            "hit_over_miss_p50": p50(&hit) / p50(&miss),
            "presign_us_per_call": sign_us,
            "cache_lookup_us_per_call": lookup_us,
        })
    );
}
