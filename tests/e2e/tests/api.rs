//! The REST API, photos and the thumbnail queue on the emulator, through the real
//! HTTP API, WebSocket API, S3, SQS and DynamoDB.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::http;
use e2e::{eventually, png, Stack, WsClient};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn png_side(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    (reader.info().width, reader.info().height)
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn catalogue_pages_filters_and_errors_through_the_http_api() {
    let stack = Stack::load().await;
    let mut seen = Vec::new();
    let mut url = format!("{}/products?limit=25", stack.rest_url);
    loop {
        let page = http::get(&url, &[]).await;
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
        let body = page.json();
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["productId"].as_str().unwrap().to_owned()),
        );
        match body["nextCursor"].as_str() {
            Some(cursor) => url = format!("{}/products?limit=25&cursor={cursor}", stack.rest_url),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        (seen.len(), unique.len()),
        (60, 60),
        "every seeded product once"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in product-id order");

    let tea = http::get(&format!("{}/products?category=tea", stack.rest_url), &[])
        .await
        .json();
    let items = tea["items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert!(items.iter().all(|p| p["category"] == "tea"));

    let one = http::get(&format!("{}/products/p-001", stack.rest_url), &[]).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    let stored = stack.product("p-001").await;
    assert_eq!(one["version"], stored.version);
    assert_eq!(one["priceCents"], stored.price_cents);
    assert_eq!(one["photos"]["full"], "/products/p-001/photo?size=full");

    for (path, status, code) in [
        ("/products/p-999", 404, "product_not_found"),
        ("/products?limit=0", 400, "bad_limit"),
        ("/products?cursor=not-a-cursor", 400, "bad_cursor"),
        ("/products/p-001/photo?size=poster", 400, "bad_size"),
    ] {
        let response = http::get(&format!("{}{path}", stack.rest_url), &[]).await;
        assert_eq!(response.status, status, "{path}");
        assert_eq!(response.json()["error"]["code"], code, "{path}");
        assert!(response
            .header("content-type")
            .unwrap()
            .starts_with("application/json"));
    }
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn photo_redirects_to_a_working_presigned_url_with_validators() {
    let stack = Stack::load().await;
    let url = format!("{}/products/p-002/photo", stack.rest_url);
    let first = http::get(&url, &[]).await;
    assert_eq!(
        first.status,
        302,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let location = first.header("location").unwrap().to_owned();
    let etag = first.header("etag").unwrap().to_owned();
    assert!(first.header("cache-control").unwrap().contains("max-age="));
    let photo = http::get(&location, &[]).await;
    assert_eq!(photo.status, 200, "the presigned URL works");
    assert_eq!(png_side(&photo.body), (96, 96), "the seeded original");

    let again = http::get(&url, &[]).await;
    assert_eq!(again.header("x-presign-cache"), Some("hit"));
    assert_eq!(again.header("location"), Some(location.as_str()));
    let unchanged = http::get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(unchanged.status, 304);
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));
    assert!(unchanged.body.is_empty());
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn writes_and_websocket_connects_need_a_valid_token() {
    let stack = Stack::load().await;
    let url = format!("{}/products/p-003/photo", stack.rest_url);
    let image = png(8, 1);
    let no_token = http::request("PUT", &url, &[("content-type", "image/png")], &image).await;
    assert_eq!(
        (no_token.status, no_token.json()["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let forged = format!(
        "Bearer {}",
        catalog_core::auth::issue(b"not-the-stack-secret-not-the-stack-secret", "eve", 60)
    );
    let refused = http::request(
        "PUT",
        &url,
        &[("authorization", &forged), ("content-type", "image/png")],
        &image,
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        stack
            .upload_photo("p-003", "text/plain", b"hello")
            .await
            .status,
        415
    );
    assert_eq!(
        stack
            .upload_photo("p-003", "image/png", b"GIF89a nope")
            .await
            .status,
        415
    );
    let too_big = [png(8, 1), vec![0u8; 300_000]].concat();
    assert_eq!(
        stack
            .upload_photo("p-003", "image/png", &too_big)
            .await
            .status,
        413
    );

    let before: std::collections::BTreeSet<String> =
        stack.connection_ids().await.into_iter().collect();
    for url in [
        stack.ws_url_without_token.clone(),
        format!("{}?token=garbage", stack.ws_url_without_token),
        format!(
            "{}?token={}",
            stack.ws_url_without_token,
            forged.trim_start_matches("Bearer ")
        ),
    ] {
        let result = tokio_tungstenite::connect_async(&url).await;
        assert!(
            result.is_err(),
            "connect without a valid token must be refused: {url}"
        );
    }
    let new: Vec<String> = stack
        .connection_ids()
        .await
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert!(new.is_empty(), "no record for refused connects: {new:?}");
    let accepted = WsClient::subscribed(&stack.ws_url, Some(&["p-003"])).await;
    accepted.close().await;
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn an_upload_becomes_a_thumbnail_and_clients_receive_product_photo_changed() {
    let stack = Stack::load().await;
    let client = WsClient::subscribed(&stack.ws_url, Some(&["p-040"])).await;
    let accepted = stack
        .upload_photo("p-040", "image/png", &png(300, 40))
        .await;
    assert_eq!(
        accepted.status,
        202,
        "{}",
        String::from_utf8_lossy(&accepted.body)
    );
    let accepted = accepted.json();
    let job_id = accepted["jobId"].as_str().unwrap().to_owned();
    let version = accepted["photoVersion"].as_u64().unwrap();
    let thumb_key = format!("photos/thumb/p-040/v{version}.png");

    eventually("the thumbnail in S3", WAIT, || {
        stack.object_exists(&thumb_key)
    })
    .await;
    client
        .wait_for("ProductPhotoChanged", WAIT, |frames| {
            frames
                .iter()
                .any(|f| f["type"] == "productPhotoChanged" && f["changeId"] == job_id.as_str())
        })
        .await;
    let frame: Value = client
        .frames_of_type("productPhotoChanged")
        .into_iter()
        .find(|f| f["changeId"] == job_id.as_str())
        .unwrap();
    assert_eq!(frame["photoVersion"], version);
    let thumb = http::get(frame["thumbUrl"].as_str().unwrap(), &[]).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(png_side(&thumb.body), (64, 64));
    let full = http::get(frame["fullUrl"].as_str().unwrap(), &[]).await;
    assert_eq!((full.status, png_side(&full.body)), (200, (300, 300)));

    let product = http::get(&format!("{}/products/p-040", stack.rest_url), &[])
        .await
        .json();
    assert_eq!(product["photoVersion"], version);
    assert_eq!(
        product["photos"]["thumb"],
        "/products/p-040/photo?size=thumb"
    );
    client.close().await;
}

/// Reads the job log: (status, completed runs) of a job.
async fn job_record(stack: &Stack, job_id: &str) -> Option<(String, u64)> {
    let item = stack
        .dynamo
        .get_item()
        .table_name(stack.output("PhotoJobsTableName"))
        .key(
            "jobId",
            aws_sdk_dynamodb::types::AttributeValue::S(job_id.to_owned()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    let status = item.get("status")?.as_s().ok()?.clone();
    let runs = item
        .get("runs")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some((status, runs))
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn each_photo_job_is_processed_by_exactly_one_worker() {
    let stack = Stack::load().await;
    let bucket = stack.output("PhotosBucketName").to_owned();
    let mut jobs = Vec::new();
    for i in 0..12 {
        let product_id = format!("p-{:03}", 41 + i);
        let key = format!(
            "photos/original/{product_id}/e2e-{}.png",
            uuid::Uuid::new_v4()
        );
        stack
            .s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(png(120, i as u8).into())
            .send()
            .await
            .unwrap();
        jobs.push(catalog_core::ports::PhotoJob::new(
            &product_id,
            &key,
            1000 + i as u64,
        ));
    }
    // Every job three times, shuffled, in separate sends: the queue hands them to up to
    // five concurrent workers.
    let mut bodies: Vec<String> = jobs
        .iter()
        .flat_map(|j| std::iter::repeat_n(serde_json::to_string(j).unwrap(), 3))
        .collect();
    fastrand::Rng::with_seed(4).shuffle(&mut bodies);
    for body in &bodies {
        stack
            .sqs
            .send_message()
            .queue_url(stack.output("PhotoJobsQueueUrl"))
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    for job in &jobs {
        eventually(&format!("job {} done", job.job_id), WAIT, || async {
            matches!(job_record(&stack, &job.job_id).await, Some((s, _)) if s == "done")
        })
        .await;
    }
    // Copies that arrived while another worker held the job come back after the visibility
    // timeout and must then be skipped as done, not processed again.
    let queue = stack.output("PhotoJobsQueueUrl").to_owned();
    eventually("the photo-jobs queue drained", WAIT, || async {
        stack.queue_depth(&queue).await == 0
    })
    .await;
    for job in &jobs {
        let (_, runs) = job_record(&stack, &job.job_id).await.unwrap();
        assert_eq!(runs, 1, "job {} completed {runs} times", job.job_id);
        let thumb = photos_thumb(job);
        assert!(stack.object_exists(&thumb).await, "{thumb}");
    }
}

fn photos_thumb(job: &catalog_core::ports::PhotoJob) -> String {
    catalog_core::ports::photos::thumb_key(&job.product_id, job.photo_version)
}

#[tokio::test]
#[ignore = "needs the deployed stack: scripts/test runs it"]
async fn a_corrupt_upload_lands_in_the_photo_jobs_dlq_with_its_reason() {
    let stack = Stack::load().await;
    let mut corrupt = png(16, 9);
    corrupt.truncate(30); // the PNG signature survives, the image does not
    let accepted = stack.upload_photo("p-055", "image/png", &corrupt).await;
    assert_eq!(accepted.status, 202);
    let key = accepted.json()["photoKey"].as_str().unwrap().to_owned();
    let dlq = stack.output("PhotoJobsDeadLetterQueueUrl").to_owned();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the corrupt job never reached the DLQ"
        );
        let out = stack
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .message_attribute_names("All")
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let found = out
            .messages()
            .iter()
            .find(|m| m.body().unwrap_or("").contains(&key))
            .cloned();
        if let Some(message) = found {
            let reason = message.message_attributes().unwrap()["failureReason"]
                .string_value()
                .unwrap()
                .to_owned();
            assert!(reason.contains("is not a readable image"), "{reason}");
            stack
                .sqs
                .delete_message()
                .queue_url(&dlq)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            break;
        }
    }
}
