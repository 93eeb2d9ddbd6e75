//! In-memory stand-ins for the adapters, so handler logic is tested without AWS.
//! They follow the same rules as the real stores (conditional versions, 410s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::aws::{
    ChangePublisher, Connection, ConnectionStore, DeadLetter, DeadLetters, GeneratorStore,
    ProductStore, PushError, Pusher, StoreError,
};
use crate::generate::ProductState;
use crate::version::{classify, Classification};
use crate::{ApplyOutcome, Product, ProductChanged, StockAndPrice};

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

/// A stored product, the id of the change that produced it, and its published version.
type ProductRow = (Product, Option<String>, u64);

#[derive(Default)]
pub struct MemoryProducts {
    pub rows: Mutex<BTreeMap<String, ProductRow>>,
    /// Product ids whose writes fail, as a downstream outage would.
    pub failing: Mutex<BTreeSet<String>>,
}

impl MemoryProducts {
    pub fn with(products: impl IntoIterator<Item = Product>) -> Self {
        let store = Self::default();
        for p in products {
            store
                .rows
                .lock()
                .unwrap()
                .insert(p.product_id.clone(), (p, None, 0));
        }
        store
    }

    pub fn get(&self, id: &str) -> Option<Product> {
        self.rows.lock().unwrap().get(id).map(|r| r.0.clone())
    }

    pub fn published(&self, id: &str) -> u64 {
        self.rows.lock().unwrap().get(id).map_or(0, |r| r.2)
    }
}

#[async_trait]
impl ProductStore for MemoryProducts {
    async fn apply_change(
        &self,
        change: &ProductChanged,
    ) -> Result<ApplyOutcome<Product>, StoreError> {
        if self.failing.lock().unwrap().contains(&change.product_id) {
            return Err(StoreError::Aws {
                operation: "UpdateItem product",
                message: "injected failure".into(),
            });
        }
        let mut rows = self.rows.lock().unwrap();
        let row = rows
            .get_mut(&change.product_id)
            .ok_or_else(|| StoreError::UnknownProduct(change.product_id.clone()))?;
        Ok(
            match classify(
                change.version,
                &change.change_id,
                row.0.version,
                row.1.as_deref(),
            ) {
                Classification::Newer => {
                    row.0.price_cents = change.current.price_cents;
                    row.0.stock = change.current.stock;
                    row.0.version = change.version;
                    row.0.updated_at = change.changed_at.to_rfc3339();
                    row.1 = Some(change.change_id.clone());
                    ApplyOutcome::Applied(row.0.clone())
                }
                Classification::SameChange => ApplyOutcome::Duplicate(row.0.clone()),
                Classification::Older => ApplyOutcome::Stale {
                    stored_version: row.0.version,
                },
            },
        )
    }

    async fn all_products(&self) -> Result<Vec<Product>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .values()
            .map(|r| r.0.clone())
            .collect())
    }
}

#[async_trait]
impl GeneratorStore for MemoryProducts {
    async fn generator_states(&self) -> Result<Vec<ProductState>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .values()
            .map(|(p, _, published)| ProductState {
                product_id: p.product_id.clone(),
                values: StockAndPrice {
                    price_cents: p.price_cents,
                    stock: p.stock,
                },
                applied_version: p.version,
                published_version: *published,
            })
            .collect())
    }

    async fn record_published(&self, product_id: &str, version: u64) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(product_id) {
            Some(row) if row.2 < version => {
                row.2 = version;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[derive(Default)]
pub struct MemoryConnections {
    pub rows: Mutex<BTreeMap<String, Option<BTreeSet<String>>>>,
}

impl MemoryConnections {
    pub fn ids(&self) -> Vec<String> {
        self.rows.lock().unwrap().keys().cloned().collect()
    }
}

#[async_trait]
impl ConnectionStore for MemoryConnections {
    async fn add(
        &self,
        connection_id: &str,
        _connected_at_ms: i64,
        _expires_at_s: i64,
    ) -> Result<(), StoreError> {
        self.rows
            .lock()
            .unwrap()
            .insert(connection_id.to_owned(), None);
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), StoreError> {
        self.rows.lock().unwrap().remove(connection_id);
        Ok(())
    }

    async fn set_filter(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
    ) -> Result<bool, StoreError> {
        Ok(match self.rows.lock().unwrap().get_mut(connection_id) {
            Some(filter) => {
                *filter = product_ids.cloned();
                true
            }
            None => false,
        })
    }

    async fn all(&self) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .iter()
            .map(|(id, filter)| Connection {
                connection_id: id.clone(),
                product_ids: filter.clone(),
            })
            .collect())
    }
}

/// Records every frame per connection; connections in `gone` answer 410, in `failing` a 500.
#[derive(Default)]
pub struct RecordingPusher {
    pub sent: Mutex<HashMap<String, Vec<String>>>,
    pub gone: Mutex<BTreeSet<String>>,
    pub failing: Mutex<BTreeSet<String>>,
}

impl RecordingPusher {
    pub fn frames(&self, connection_id: &str) -> Vec<serde_json::Value> {
        self.sent
            .lock()
            .unwrap()
            .get(connection_id)
            .map(|frames| {
                frames
                    .iter()
                    .map(|f| serde_json::from_str(f).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl Pusher for RecordingPusher {
    async fn push(&self, connection_id: &str, payload: &str) -> Result<(), PushError> {
        if self.gone.lock().unwrap().contains(connection_id) {
            return Err(PushError::Gone);
        }
        if self.failing.lock().unwrap().contains(connection_id) {
            return Err(PushError::Failed("500 injected".into()));
        }
        self.sent
            .lock()
            .unwrap()
            .entry(connection_id.to_owned())
            .or_default()
            .push(payload.to_owned());
        Ok(())
    }
}

/// Accepts changes until `fail_after` publishes have succeeded.
#[derive(Default)]
pub struct RecordingPublisher {
    pub published: Mutex<Vec<ProductChanged>>,
    pub fail_after: Option<usize>,
}

#[async_trait]
impl ChangePublisher for RecordingPublisher {
    async fn publish(&self, change: &ProductChanged) -> Result<String, StoreError> {
        let mut published = self.published.lock().unwrap();
        if self.fail_after.is_some_and(|n| published.len() >= n) {
            return Err(StoreError::Aws {
                operation: "SNS Publish",
                message: "injected outage".into(),
            });
        }
        published.push(change.clone());
        Ok(format!("msg-{}", published.len()))
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

/// Keeps dead letters in memory; `failing` makes sending them fail.
#[derive(Default)]
pub struct MemoryDeadLetters {
    pub letters: Mutex<Vec<DeadLetter>>,
    pub failing: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl DeadLetters for MemoryDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Aws {
                operation: "SQS SendMessage",
                message: "injected outage".into(),
            });
        }
        self.letters.lock().unwrap().push(letter.clone());
        Ok(())
    }
}
