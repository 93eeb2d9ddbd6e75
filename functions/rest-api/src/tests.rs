use std::collections::{BTreeMap, BTreeSet};

use axum::http;
use catalog_core::fakes::{product, MemoryBucket, MemoryProducts, RecordingJobQueue};
use lambda_http::{Body, Request};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use catalog_core::Product;

const SECRET: &[u8] = b"rest-api-test-secret-rest-api-test";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F'];

/// 25 products: p-001..p-010 are tea, the rest coffee; p-001 has a thumbnail.
fn api() -> RestApi {
    let products = (1..=25).map(|i| {
        let mut p = product(&format!("p-{i:03}"), 100 * i, i);
        p.category = if i <= 10 { "tea" } else { "coffee" }.to_owned();
        if i == 1 {
            p.thumb_key = Some("photos/thumb/p-001/v0.png".to_owned());
        }
        p
    });
    RestApi {
        products: Box::new(MemoryProducts::with(products)),
        bucket: Box::new(MemoryBucket::default()),
        jobs: Box::new(RecordingJobQueue::default()),
        verifier: TokenVerifier::new(SECRET),
        presigned: presign_cache_from(900),
        max_photo_bytes: 1000,
    }
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body.to_vec())
    };
    builder.body(body).unwrap()
}

fn token() -> String {
    format!("Bearer {}", catalog_core::auth::issue(SECRET, "tester", 60))
}

fn app(api: RestApi) -> Router {
    router(Arc::new(api))
}

async fn call(app: &Router, req: Request) -> (u16, Value, http::HeaderMap) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("every body is JSON")
    };
    (status, json, headers)
}

async fn get(api: &Router, uri: &str) -> (u16, Value, http::HeaderMap) {
    call(api, request("GET", uri, &[], b"")).await
}

#[tokio::test]
async fn pages_walk_the_whole_catalogue_once_in_order() {
    let api = app(api());
    let mut seen = Vec::new();
    let mut uri = "/products?limit=7".to_owned();
    loop {
        let (status, body, _) = get(&api, &uri).await;
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["productId"].as_str().unwrap().to_owned()),
        );
        match body["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/products?limit=7&cursor={cursor}"),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=25).map(|i| format!("p-{i:03}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn category_filter_and_its_cursor() {
    let api = app(api());
    let (_, first, _) = get(&api, "/products?category=tea&limit=6").await;
    assert!(first["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["category"] == "tea"));
    let cursor = first["nextCursor"].as_str().unwrap();
    let (status, second, _) = get(
        &api,
        &format!("/products?category=tea&limit=6&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second["items"].as_array().unwrap().len(), 4);
    assert_eq!(second["nextCursor"], Value::Null);
    let (status, body, _) = get(&api, &format!("/products?category=coffee&cursor={cursor}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_cursor"))
    );
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_json_error() {
    let api = app(api());
    for (uri, code) in [
        ("/products?limit=0", "bad_limit"),
        ("/products?limit=101", "bad_limit"),
        ("/products?limit=ten", "bad_limit"),
        ("/products?cursor=garbage!", "bad_cursor"),
        ("/products?category=a%20b", "bad_category"),
        ("/products/p-001/photo?size=huge", "bad_size"),
    ] {
        let (status, body, headers) = get(&api, uri).await;
        assert_eq!(status, 400, "{uri}");
        assert_eq!(body["error"]["code"], code, "{uri}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10);
        assert_eq!(headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn unknown_products_routes_and_methods() {
    let api = app(api());
    assert_eq!(get(&api, "/products/p-999").await.0, 404);
    assert_eq!(
        get(&api, "/products/p-999").await.1["error"]["code"],
        "product_not_found"
    );
    assert_eq!(get(&api, "/products/p-999/photo").await.0, 404);
    assert_eq!(
        get(&api, "/products/p-002/photo?size=thumb").await.1["error"]["code"],
        "photo_not_found"
    );
    assert_eq!(
        get(&api, "/nope").await.1["error"]["code"],
        "route_not_found"
    );
    let (status, body, _) = call(&api, request("DELETE", "/products/p-001", &[], b"")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn photo_redirects_with_validators_and_reuses_the_presigned_url() {
    let api = app(api());
    let (status, _, first) = get(&api, "/products/p-001/photo?size=thumb").await;
    assert_eq!(status, 302);
    assert_eq!(first["x-presign-cache"], "miss");
    let etag = first["etag"].to_str().unwrap().to_owned();
    assert!(first["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age="));
    let (_, _, second) = get(&api, "/products/p-001/photo?size=thumb").await;
    assert_eq!(second["x-presign-cache"], "hit");
    assert_eq!(second["location"], first["location"]);

    let conditional = request(
        "GET",
        "/products/p-001/photo?size=thumb",
        &[("if-none-match", &etag)],
        b"",
    );
    let (status, body, headers) = call(&api, conditional).await;
    assert_eq!((status, body), (304, Value::Null));
    assert_eq!(headers["etag"].to_str().unwrap(), etag);

    let (_, _, full) = get(&api, "/products/p-001/photo").await;
    assert_ne!(
        full["etag"], first["etag"],
        "each size has its own validator"
    );
}

#[tokio::test]
async fn upload_needs_a_token_and_an_image_within_the_limit() {
    let api = app(api());
    let auth = token();
    let expired = format!("Bearer {}", catalog_core::auth::issue(SECRET, "t", -120));
    let big = [PNG, &[0u8; 1000]].concat();
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, &[u8], u16, &str); 7] = [
        (&[("content-type", "image/png")], PNG, 401, "unauthorized"),
        (
            &[("authorization", &expired), ("content-type", "image/png")],
            PNG,
            401,
            "unauthorized",
        ),
        (
            &[("authorization", &auth), ("content-type", "text/plain")],
            PNG,
            415,
            "unsupported_media_type",
        ),
        (
            &[("authorization", &auth), ("content-type", "image/png")],
            b"GIF89a....",
            415,
            "not_an_image",
        ),
        (
            &[("authorization", &auth), ("content-type", "image/jpeg")],
            PNG,
            415,
            "not_an_image",
        ),
        (
            &[("authorization", &auth), ("content-type", "image/png")],
            &big,
            413,
            "photo_too_large",
        ),
        (
            &[("authorization", &auth), ("content-type", "image/png")],
            b"",
            400,
            "empty_body",
        ),
    ];
    for (headers, body, status, code) in cases {
        let (got, json, response_headers) =
            call(&api, request("PUT", "/products/p-003/photo", headers, body)).await;
        assert_eq!((got, json["error"]["code"].as_str()), (status, Some(code)));
        if status == 401 {
            assert_eq!(response_headers["www-authenticate"], "Bearer");
        }
    }
    let (status, _, _) = call(
        &api,
        request(
            "PUT",
            "/products/p-404/photo",
            &[("authorization", &auth), ("content-type", "image/png")],
            PNG,
        ),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_accepted_upload_stores_the_original_and_queues_one_job() {
    let bucket = MemoryBucket::default();
    let jobs = RecordingJobQueue::default();
    let mut api = api();
    api.bucket = Box::new(bucket.clone());
    api.jobs = Box::new(jobs.clone());
    let api = app(api);
    let auth = token();
    for (body, content_type, version) in [(PNG, "image/png", 1), (JPEG, "image/jpeg", 2)] {
        let req = request(
            "PUT",
            "/products/p-003/photo",
            &[("authorization", &auth), ("content-type", content_type)],
            body,
        );
        let (status, json, _) = call(&api, req).await;
        assert_eq!(status, 202, "{json}");
        assert_eq!(json["photoVersion"], version);
        let key = json["photoKey"].as_str().unwrap();
        assert_eq!(bucket.objects.lock().unwrap()[key].0, body);
    }
    let queued = jobs.jobs.lock().unwrap().clone();
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[1].photo_key, "photos/original/p-003/v2.jpg");
    assert_ne!(queued[0].job_id, queued[1].job_id);
}

#[tokio::test]
async fn a_real_http_api_event_is_routed_below_its_stage() {
    let request = lambda_http::request::from_str(&catalog_core::event_fixtures::load(
        "rest-api",
        "list-products",
    ))
    .unwrap();
    let (status, body, _) = call(&app(api()), below_stage(request)).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["productId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p-001", "p-002"]);
}

/// The contract, both ways: every (route, method, status) the spec declares is produced
/// by the implementation in one of these cases, every response the cases produce is
/// declared, JSON bodies validate against the declared schema, declared headers are set.
#[tokio::test]
async fn implementation_and_openapi_spec_agree() {
    let spec = serde_json::to_value(openapi()).unwrap();
    let auth = token();
    let png = [
        ("authorization", auth.as_str()),
        ("content-type", "image/png"),
    ];
    let thumb_etag = photo::etag("photos/thumb/p-001/v0.png");
    let cases: Vec<(&str, &str, Request)> = vec![
        (
            "/products",
            "get",
            request("GET", "/products?limit=3", &[], b""),
        ),
        (
            "/products",
            "get",
            request("GET", "/products?limit=500", &[], b""),
        ),
        (
            "/products/{productId}",
            "get",
            request("GET", "/products/p-001", &[], b""),
        ),
        (
            "/products/{productId}",
            "get",
            request("GET", "/products/p-777", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "get",
            request("GET", "/products/p-001/photo?size=thumb", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "get",
            request(
                "GET",
                "/products/p-001/photo?size=thumb",
                &[("if-none-match", &thumb_etag)],
                b"",
            ),
        ),
        (
            "/products/{productId}/photo",
            "get",
            request("GET", "/products/p-001/photo?size=xl", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "get",
            request("GET", "/products/p-002/photo?size=thumb", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request("PUT", "/products/p-002/photo", &png, PNG),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request("PUT", "/products/p-002/photo", &png, b""),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request(
                "PUT",
                "/products/p-002/photo",
                &[("content-type", "image/png")],
                PNG,
            ),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request("PUT", "/products/p-999/photo", &png, PNG),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request(
                "PUT",
                "/products/p-002/photo",
                &png,
                &[PNG, &[0u8; 2000]].concat(),
            ),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request("PUT", "/products/p-002/photo", &png, b"hello"),
        ),
    ];
    // The same routes with the products table down: 503.
    let mut down_api = api();
    down_api.products = Box::new(Down(Default::default()));
    let down_api = app(down_api);
    let down_cases = [
        ("/products", "get", request("GET", "/products", &[], b"")),
        (
            "/products/{productId}",
            "get",
            request("GET", "/products/p-001", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "get",
            request("GET", "/products/p-001/photo", &[], b""),
        ),
        (
            "/products/{productId}/photo",
            "put",
            request("PUT", "/products/p-002/photo", &png, PNG),
        ),
    ];
    let api = app(api());
    let all = cases
        .into_iter()
        .map(|(route, method, req)| (route, method, req, &api))
        .chain(
            down_cases
                .into_iter()
                .map(|(route, method, req)| (route, method, req, &down_api)),
        );
    let mut produced = BTreeSet::new();
    for (route, method, req, api) in all {
        let (status, body, headers) = call(api, req).await;
        let status = status.to_string();
        let declared = &spec["paths"][route][method]["responses"][&status];
        assert!(
            declared.is_object(),
            "{method} {route} answered {status}, which the spec does not declare"
        );
        if let Some(declared_headers) = declared["headers"].as_object() {
            for name in declared_headers.keys() {
                assert!(
                    headers.contains_key(name.to_ascii_lowercase().as_str()),
                    "{method} {route} {status}: header {name} is declared but not set"
                );
            }
        }
        if let Some(schema) = declared["content"]["application/json"]["schema"].as_object() {
            let mut root = Value::Object(schema.clone());
            root["components"] = spec["components"].clone();
            let validator = jsonschema::validator_for(&root).expect("the spec's schema compiles");
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {route} {status}: body does not match the spec: {errors:?}\n{body}"
            );
        }
        produced.insert((route.to_owned(), method.to_owned(), status));
    }
    let mut declared = BTreeSet::new();
    for (route, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for status in operation["responses"].as_object().unwrap().keys() {
                declared.insert((route.clone(), method.clone(), status.clone()));
            }
        }
    }
    let untested: Vec<_> = declared.difference(&produced).collect();
    assert!(
        untested.is_empty(),
        "declared in the spec but never produced: {untested:?}"
    );
}

/// `openapi.yaml` at the repository root is the generated spec, never edited by hand.
/// `UPDATE_OPENAPI=1 cargo test -p rest-api openapi_yaml` rewrites it.
#[test]
fn openapi_yaml_is_the_generated_spec() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.yaml");
    let generated = format!(
        "# Generated from functions/rest-api (utoipa); do not edit. Regenerate: UPDATE_OPENAPI=1 cargo test -p rest-api openapi_yaml\n{}",
        openapi().to_yaml().unwrap()
    );
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "openapi.yaml differs from the code; regenerate it with UPDATE_OPENAPI=1 cargo test -p rest-api openapi_yaml");
    let spec: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(serde_json::to_value(openapi()).unwrap()).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
}

/// A products table that is down; clones share the count of calls that reached it.
#[derive(Clone, Default)]
struct Down(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[async_trait::async_trait]
impl CatalogReader for Down {
    async fn product(
        &self,
        _: &str,
    ) -> Result<Option<Product>, catalog_core::ports::DownstreamError> {
        Err(self.fail())
    }
    async fn page(
        &self,
        _: Option<&str>,
        _: usize,
        _: Option<&catalog_core::ports::PageKey>,
    ) -> Result<catalog_core::ports::Page, catalog_core::ports::DownstreamError> {
        Err(self.fail())
    }
}

#[async_trait::async_trait]
impl PhotoRecords for Down {
    async fn next_photo_version(
        &self,
        _: &str,
    ) -> Result<Option<u64>, catalog_core::ports::DownstreamError> {
        Err(self.fail())
    }
    async fn set_photo(
        &self,
        _: &str,
        _: u64,
        _: &str,
        _: &str,
    ) -> Result<bool, catalog_core::ports::DownstreamError> {
        Err(self.fail())
    }
}

impl Down {
    fn fail(&self) -> catalog_core::ports::DownstreamError {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        catalog_core::ports::DownstreamError::Aws {
            operation: "Query products",
            message: "ServiceUnavailable".into(),
        }
    }
}

#[tokio::test]
async fn a_failing_table_answers_503_and_an_open_breaker_stops_calling_it() {
    use catalog_core::breaker::{BreakerConfig, CircuitBreaker};
    let down = Down::default();
    let config = BreakerConfig {
        min_calls: 3,
        ..BreakerConfig::default()
    };
    let mut api = api();
    api.products = Box::new(catalog_core::aws::Guarded::new(
        down.clone(),
        std::sync::Arc::new(CircuitBreaker::new("dynamodb", config)),
    ));
    let api = app(api);
    for _ in 0..10 {
        let (status, body, _) = get(&api, "/products/p-001").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("unavailable"))
        );
    }
    let calls = down.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        calls < 10,
        "the open breaker refused the later calls ({calls} reached the table)"
    );
}

#[tokio::test]
async fn every_bad_request_names_its_own_problem() {
    let api = app(api());
    let cases = [
        ("/products?limit=0", "bad_limit", "limit"),
        ("/products?limit=ten", "bad_limit", "\"ten\""),
        ("/products?cursor=garbage!", "bad_cursor", "cursor"),
        ("/products?category=a%20b", "bad_category", "category"),
        ("/products?category=", "bad_category", "category"),
        ("/products?limit=1&limit=2", "bad_query", "limit"),
        ("/products/p-001/photo?size=huge", "bad_size", "\"huge\""),
    ];
    let mut messages = BTreeSet::new();
    for (uri, code, names) in cases {
        let (status, body, _) = get(&api, uri).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{uri}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(names),
            "{uri}: {message:?} should name {names}"
        );
        messages.insert(message);
    }
    assert_eq!(
        messages.len(),
        cases.len(),
        "each case has its own message: {messages:?}"
    );
}

/// The spec's parameter rules and the parser's are the same rules: for each sample value, the
/// parameter's schema in the spec accepts it exactly when the API does (answers other than 400).
#[tokio::test]
async fn the_spec_states_every_rule_the_parser_enforces() {
    let spec = serde_json::to_value(openapi()).unwrap();
    let api = app(api());
    let long = "c".repeat(64);
    let too_long = "c".repeat(65);
    let samples: [(&str, &str, &[&str]); 3] = [
        (
            "/products",
            "limit",
            &["1", "20", "100", "0", "101", "-1", "ten", "1.5", "", "+5"],
        ),
        (
            "/products",
            "category",
            &["tea", "a-b_c", &long, &too_long, "", "a b", "tea!", "thé"],
        ),
        (
            "/products/{productId}/photo",
            "size",
            &["full", "thumb", "FULL", "", "huge"],
        ),
    ];
    for (route, name, values) in samples {
        let parameter = spec["paths"][route]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{route} documents {name}"));
        let mut schema = parameter["schema"].clone();
        schema["components"] = spec["components"].clone();
        let validator = jsonschema::validator_for(&schema).expect("the parameter schema compiles");
        for value in values {
            // A query value is text; an integer parameter's text must be an integer literal.
            let as_json = match parameter["schema"]["type"].as_str() {
                Some("integer") => value
                    .parse::<i64>()
                    .ok()
                    .filter(|_| !value.starts_with('+'))
                    .map_or(Value::String(value.to_string()), Value::from),
                _ => Value::String(value.to_string()),
            };
            let spec_accepts = validator.is_valid(&as_json);
            let path = route.replace("{productId}", "p-001");
            let encoded: String = form_urlencoded_value(value);
            let (status, body, _) = get(&api, &format!("{path}?{name}={encoded}")).await;
            assert_eq!(
                spec_accepts,
                status != 400,
                "{name}={value:?}: the spec {} it, the API answered {status} {body}",
                if spec_accepts { "accepts" } else { "refuses" }
            );
        }
    }
}

fn form_urlencoded_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `openapi.yaml` is a valid OpenAPI 3.1 document with every `$ref` resolved, by a real
/// validator (openapi-spec-validator, installed into .venv by `scripts/setup`).
#[test]
fn openapi_yaml_validates_as_openapi_3_1() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let validator = root.join(".venv/bin/openapi-spec-validator");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/setup",
        validator.display()
    );
    let output = std::process::Command::new(&validator)
        .arg(root.join("openapi.yaml"))
        .output()
        .expect("the validator runs");
    assert!(
        output.status.success(),
        "openapi.yaml is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every fixture in `events/rest-api/` (HTTP API payload 2.0, stage `v1`) through the router
/// as Lambda delivers it: the status each case is named for.
#[tokio::test]
async fn each_http_api_event_fixture_gets_the_status_its_name_says() {
    let expected = [
        ("list-products", 200),
        ("list-products-bad-limit", 400),
        ("list-products-bad-cursor", 400),
        ("get-product", 200),
        ("get-product-not-found", 404),
        ("get-photo", 302),
        ("get-photo-not-modified", 304),
        ("get-photo-bad-size", 400),
        ("put-photo", 202),
        ("put-photo-without-token", 401),
        ("put-photo-not-an-image", 415),
        ("openapi", 200),
        ("unknown-route", 404),
    ];
    catalog_core::event_fixtures::assert_covered(
        "rest-api",
        expected.iter().map(|(case, _)| *case),
    );
    let token = catalog_core::auth::issue(SECRET, "tester", 60);
    for (case, status) in expected {
        let text = catalog_core::event_fixtures::load_with_token("rest-api", case, &token);
        let request = lambda_http::request::from_str(&text).unwrap();
        let (got, body, _) = call(&app(api()), below_stage(request)).await;
        assert_eq!(got, status, "{case}: {body}");
    }
}
