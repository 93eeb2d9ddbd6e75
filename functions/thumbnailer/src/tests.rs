use catalog_core::fakes::{
    product, MemoryBucket, MemoryDeadLetters, MemoryJobLog, MemoryProducts, RecordingPhotoPublisher,
};
use catalog_core::ports::CatalogReader;

use super::*;

/// A PNG or JPEG of `w`×`h` pixels.
fn picture(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

#[test]
fn thumbnails_fit_the_box_keep_the_aspect_and_are_png() {
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
        let thumb = make_thumbnail(&picture(400, 200, format), THUMB_SIDE).unwrap();
        let decoded = image::load_from_memory(&thumb).unwrap();
        assert_eq!(
            image::guess_format(&thumb).unwrap(),
            image::ImageFormat::Png
        );
        assert_eq!((decoded.width(), decoded.height()), (64, 32));
    }
    assert!(make_thumbnail(b"\x89PNG\r\n\x1a\n truncated", THUMB_SIDE).is_err());
    assert!(make_thumbnail(b"hello", THUMB_SIDE).is_err());
}

/// Clones of the fakes the worker holds, so the test can look inside after it used them.
struct World {
    bucket: MemoryBucket,
    products: MemoryProducts,
    jobs: MemoryJobLog,
    publisher: RecordingPhotoPublisher,
    dead: MemoryDeadLetters,
}

fn world() -> (World, Thumbnailer) {
    let w = World {
        bucket: MemoryBucket::default(),
        products: MemoryProducts::with([product("p-001", 100, 1), product("p-002", 200, 2)]),
        jobs: MemoryJobLog::default(),
        publisher: RecordingPhotoPublisher::default(),
        dead: MemoryDeadLetters::default(),
    };
    let t = Thumbnailer {
        bucket: Box::new(w.bucket.clone()),
        products: Box::new(w.products.clone()),
        jobs: Box::new(w.jobs.clone()),
        publisher: Box::new(w.publisher.clone()),
        dead_letters: Box::new(w.dead.clone()),
        lease_secs: 60,
        url_ttl: Duration::from_secs(3600),
    };
    (w, t)
}

fn fixture() -> SqsEvent {
    serde_json::from_str(&catalog_core::event_fixtures::load(
        "thumbnailer",
        "photo-job",
    ))
    .unwrap()
}

fn with_bodies(bodies: &[String]) -> SqsEvent {
    let mut event = fixture();
    let template = event.records.remove(0);
    for (i, body) in bodies.iter().enumerate() {
        let mut record = template.clone();
        record.message_id = Some(format!("m-{i}"));
        record.body = Some(body.clone());
        event.records.push(record);
    }
    event
}

#[tokio::test]
async fn a_real_job_event_makes_the_thumbnail_points_the_product_at_it_and_announces_it() {
    let (w, t) = world();
    let original = picture(300, 300, image::ImageFormat::Png);
    w.bucket
        .put("photos/original/p-001/v1.png", original, "image/png")
        .await
        .unwrap();
    let (response, counts) = t.handle_batch(fixture(), "worker-1").await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.made, counts.dead_lettered), (1, 0));
    let thumb = w.bucket.get("photos/thumb/p-001/v1.png").await.unwrap();
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), THUMB_SIDE);
    let p = w.products.product("p-001").await.unwrap().unwrap();
    assert_eq!(
        (p.photo_version, p.thumb_key.as_deref()),
        (1, Some("photos/thumb/p-001/v1.png"))
    );
    let published = w.publisher.published.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].change_id,
        "5f0c8a9e-1b2c-4d3e-8f4a-5b6c7d8e9f00"
    );
    assert!(published[0].thumb_url.contains("photos/thumb/p-001/v1.png"));
}

#[tokio::test]
async fn the_same_job_twice_in_a_batch_and_again_later_is_processed_once() {
    let (w, t) = world();
    w.bucket
        .put(
            "photos/original/p-001/v1.png",
            picture(80, 80, image::ImageFormat::Png),
            "image/png",
        )
        .await
        .unwrap();
    let body = fixture().records[0].body.clone().unwrap();
    let (_, first) = t
        .handle_batch(with_bodies(&[body.clone(), body.clone()]), "worker-1")
        .await;
    let (_, second) = t.handle_batch(with_bodies(&[body]), "worker-2").await;
    assert_eq!(
        (first.made, first.already_done, second.already_done),
        (1, 1, 1)
    );
    assert_eq!(w.publisher.published.lock().unwrap().len(), 1);
    let jobs = w.jobs.jobs.lock().unwrap();
    assert_eq!(
        jobs["5f0c8a9e-1b2c-4d3e-8f4a-5b6c7d8e9f00"].2, 1,
        "completed exactly once"
    );
}

#[tokio::test]
async fn corrupt_images_and_unreadable_jobs_go_to_the_dlq_with_their_reason_and_the_rest_goes_on() {
    let (w, t) = world();
    w.bucket
        .put(
            "photos/original/p-001/v1.png",
            b"\x89PNG\r\n\x1a\nnot really".to_vec(),
            "image/png",
        )
        .await
        .unwrap();
    w.bucket
        .put(
            "photos/original/p-002/v1.jpg",
            picture(50, 50, image::ImageFormat::Jpeg),
            "image/jpeg",
        )
        .await
        .unwrap();
    let corrupt =
        serde_json::to_string(&PhotoJob::new("p-001", "photos/original/p-001/v1.png", 1)).unwrap();
    let good =
        serde_json::to_string(&PhotoJob::new("p-002", "photos/original/p-002/v1.jpg", 1)).unwrap();
    let (response, counts) = t
        .handle_batch(with_bodies(&["{nope".into(), corrupt, good]), "w")
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.dead_lettered, counts.made), (2, 1));
    let letters = w.dead.letters.lock().unwrap().clone();
    assert!(letters[0].reason.starts_with("not a photo job"));
    assert!(
        letters[1].reason.contains("is not a readable image"),
        "{}",
        letters[1].reason
    );
    assert!(w.bucket.get("photos/thumb/p-002/v1.png").await.is_ok());
}

#[tokio::test]
async fn an_older_photo_finishing_late_is_not_announced() {
    let (w, t) = world();
    for v in [1, 2] {
        w.bucket
            .put(
                &format!("photos/original/p-001/v{v}.png"),
                picture(30, 30, image::ImageFormat::Png),
                "image/png",
            )
            .await
            .unwrap();
    }
    let job = |v: u64| {
        serde_json::to_string(&PhotoJob::new(
            "p-001",
            &format!("photos/original/p-001/v{v}.png"),
            v,
        ))
        .unwrap()
    };
    let (_, counts) = t.handle_batch(with_bodies(&[job(2), job(1)]), "w").await;
    assert_eq!((counts.made, counts.superseded), (1, 1));
    assert_eq!(
        w.products
            .product("p-001")
            .await
            .unwrap()
            .unwrap()
            .photo_version,
        2
    );
}

#[tokio::test]
async fn a_missing_original_is_retried_not_dead_lettered() {
    let (w, t) = world();
    let (response, counts) = t.handle_batch(fixture(), "w").await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!((counts.failed, counts.dead_lettered), (1, 0));
    assert!(w.dead.letters.lock().unwrap().is_empty());
}
