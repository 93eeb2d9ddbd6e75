//! The in-memory fakes of every port, in one place for the tests to import. Each fake lives
//! beside its port (`crate::ports::<port>::fake`); `Arc<port>` is a port too, so a test can
//! hand one clone to the code under test and keep the other to look inside afterwards.

pub use crate::ports::change_log::fake::MemoryChangeLog;
pub use crate::ports::connections::fake::MemoryConnections;
pub use crate::ports::dead_letters::fake::{MemoryDeadLetters, RecordingRedelivery};
pub use crate::ports::jobs::fake::MemoryJobLog;
pub use crate::ports::photos::fake::{MemoryBucket, RecordingJobQueue};
pub use crate::ports::products::fake::MemoryProducts;
pub use crate::ports::publisher::fake::{RecordingPhotoPublisher, RecordingPublisher};
pub use crate::ports::push::fake::RecordingPusher;
use crate::{Product, ProductChanged, StockAndPrice};

pub fn product(id: &str, price_cents: i64, stock: i64) -> Product {
    Product {
        product_id: id.to_owned(),
        name: format!("Product {id}"),
        category: "test".to_owned(),
        price_cents,
        currency: "EUR".to_owned(),
        stock,
        photo_key: format!("photos/{id}.png"),
        thumb_key: None,
        photo_version: 0,
        version: 0,
        updated_at: "2026-01-01T00:00:00+00:00".to_owned(),
    }
}

/// A valid change of `product_id` to `version`, with fixed values.
pub fn change_for(product_id: &str, version: u64) -> ProductChanged {
    ProductChanged {
        event_type: crate::change::PRODUCT_CHANGED.to_owned(),
        change_id: format!("change-{product_id}-{version}"),
        product_id: product_id.to_owned(),
        version,
        previous: StockAndPrice {
            price_cents: 100,
            stock: 1,
        },
        current: StockAndPrice {
            price_cents: 200,
            stock: 2,
        },
        changed_at: chrono::Utc::now(),
    }
}
