//! Seeds the catalogue: 60 products in the products table and a small generated
//! PNG photo for each in the photos bucket. Idempotent: existing products keep
//! their current state and version, existing photos are not rewritten.
//!
//! Each product without a thumbnail gets a job on the photo-jobs queue, like an upload.
//!
//! Usage: PRODUCTS_TABLE=… PHOTOS_BUCKET=… PHOTO_JOBS_QUEUE_URL=… catalog-seed

use aws_sdk_s3::primitives::ByteStream;
use catalog_core::aws::{clients, DynamoProducts, SqsPhotoJobs};
use catalog_core::ports::{CatalogReader, PhotoJob, PhotoJobQueue};
use catalog_core::{config, Product};

const CATEGORIES: [(&str, [u8; 3], [&str; 10]); 6] = [
    (
        "coffee",
        [111, 78, 55],
        [
            "Espresso Beans",
            "Filter Roast",
            "Cold Brew Pack",
            "Decaf Blend",
            "Moka Pot",
            "Hand Grinder",
            "Pour-Over Cone",
            "Milk Frother",
            "Barista Scale",
            "Travel Mug",
        ],
    ),
    (
        "tea",
        [96, 138, 72],
        [
            "Sencha",
            "Earl Grey",
            "Rooibos",
            "Oolong",
            "Chai Mix",
            "Matcha Tin",
            "Tea Infuser",
            "Cast-Iron Kettle",
            "Glass Teapot",
            "Herbal Sampler",
        ],
    ),
    (
        "kitchen",
        [180, 60, 50],
        [
            "Chef Knife",
            "Cutting Board",
            "Dutch Oven",
            "Skillet",
            "Salad Bowl",
            "Spice Rack",
            "Pepper Mill",
            "Oven Mitts",
            "Measuring Cups",
            "Apron",
        ],
    ),
    (
        "books",
        [60, 90, 160],
        [
            "Field Guide",
            "Cookbook",
            "Atlas",
            "Poetry Reader",
            "Notebook",
            "Sketchbook",
            "Travel Journal",
            "Bookends",
            "Reading Lamp",
            "Bookmark Set",
        ],
    ),
    (
        "garden",
        [70, 150, 90],
        [
            "Watering Can",
            "Pruning Shears",
            "Seed Kit",
            "Clay Pot",
            "Garden Gloves",
            "Hose Reel",
            "Trowel",
            "Bird Feeder",
            "Compost Bin",
            "Herb Planter",
        ],
    ),
    (
        "audio",
        [90, 90, 100],
        [
            "Headphones",
            "Earbuds",
            "Bookshelf Speaker",
            "Turntable",
            "Microphone",
            "DAC",
            "Cable Set",
            "Radio",
            "Soundbar",
            "Speaker Stand",
        ],
    ),
];

fn catalogue() -> Vec<Product> {
    let mut rng = catalog_core::generate::Rng::with_seed(2026);
    let seeded_at = "2026-01-01T00:00:00+00:00".to_owned();
    let mut products = Vec::new();
    for (category, _, names) in CATEGORIES {
        for name in names {
            let id = format!("p-{:03}", products.len() + 1);
            products.push(Product {
                photo_key: format!("photos/original/{id}.png"),
                thumb_key: None,
                photo_version: 0,
                product_id: id,
                name: name.to_owned(),
                category: category.to_owned(),
                price_cents: rng.i64(5..=300) * 100 - 1,
                currency: "EUR".to_owned(),
                stock: rng.i64(0..=200),
                version: 0,
                updated_at: seeded_at.clone(),
            });
        }
    }
    products
}

/// A 96×96 PNG in the category's colour with a diagonal band that differs per
/// product, so every photo is distinct; about 1–3 KB.
fn photo_png(index: usize, rgb: [u8; 3]) -> Vec<u8> {
    const SIDE: u32 = 96;
    let mut pixels = Vec::with_capacity((SIDE * SIDE * 3) as usize);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let band = (x + y + index as u32 * 7) % 48 < 12;
            let shade = |c: u8| if band { c.saturating_add(70) } else { c };
            pixels.extend_from_slice(&[shade(rgb[0]), shade(rgb[1]), shade(rgb[2])]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, SIDE, SIDE);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("header of an in-memory PNG");
    writer
        .write_image_data(&pixels)
        .expect("pixels match the header");
    drop(writer);
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let products = DynamoProducts::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config::required("PRODUCTS_TABLE")?,
    );
    let bucket = config::required("PHOTOS_BUCKET")?;
    let s3 = clients::s3_client(&sdk);
    let jobs = SqsPhotoJobs::new(
        aws_sdk_sqs::Client::new(&sdk),
        config::required("PHOTO_JOBS_QUEUE_URL")?,
    );
    let (mut inserted, mut photos, mut queued) = (0, 0, 0);
    for (index, product) in catalogue().iter().enumerate() {
        if products.insert_if_absent(product).await? {
            inserted += 1;
        }
        let exists = s3
            .head_object()
            .bucket(&bucket)
            .key(&product.photo_key)
            .send()
            .await
            .is_ok();
        if !exists {
            let rgb = CATEGORIES
                .iter()
                .find(|c| c.0 == product.category)
                .map_or([128; 3], |c| c.1);
            s3.put_object()
                .bucket(&bucket)
                .key(&product.photo_key)
                .content_type("image/png")
                .body(ByteStream::from(photo_png(index, rgb)))
                .send()
                .await?;
            photos += 1;
        }
        let stored = products.product(&product.product_id).await?;
        if let Some(stored) = stored.filter(|p| p.thumb_key.is_none() && p.photo_version == 0) {
            jobs.enqueue(&PhotoJob::new(&stored.product_id, &stored.photo_key, 0))
                .await?;
            queued += 1;
        }
    }
    println!(
        "seeded {} products ({inserted} new), {photos} new photos, {queued} thumbnail jobs queued",
        catalogue().len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_stable_valid_and_unique() {
        let products = catalogue();
        assert_eq!(
            products,
            catalogue(),
            "the seed must be deterministic to be idempotent"
        );
        assert!(products.len() >= 50);
        let ids: std::collections::BTreeSet<_> = products.iter().map(|p| &p.product_id).collect();
        assert_eq!(ids.len(), products.len());
        for p in &products {
            assert!(
                p.price_cents >= catalog_core::generate::MIN_PRICE_CENTS && p.stock >= 0,
                "{p:?}"
            );
        }
    }

    #[test]
    fn photos_are_small_distinct_pngs() {
        let a = photo_png(0, [10, 20, 30]);
        let b = photo_png(1, [10, 20, 30]);
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
        assert!(a.len() < 8 * 1024, "{} bytes", a.len());
        assert_ne!(a, b);
    }
}
