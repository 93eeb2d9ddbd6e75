//! In-memory stand-ins for the adapters, so handler logic is tested without AWS.
//! They follow the same rules as the real stores (conditional versions, 410s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::aws::{
    CatalogReader, ChangeLog, ChangePublisher, Claim, Connection, ConnectionStore, DeadLetter,
    DeadLetters, GeneratorStore, JobLog, LogEntry, LogPosition, Page, PageKey, PhotoBucket,
    PhotoChangePublisher, PhotoJob, PhotoJobQueue, PhotoRecords, ProductStore, PushError, Pusher,
    StoreError,
};
use crate::generate::ProductState;
use crate::version::{classify, Classification};
use crate::{ApplyOutcome, Product, ProductChanged, ProductPhotoChanged, StockAndPrice};

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
    pub photo_uploads: Mutex<HashMap<String, u64>>,
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

/// Rows in product-id order, like the catalogue and category indexes.
#[async_trait]
impl CatalogReader for MemoryProducts {
    async fn product(&self, product_id: &str) -> Result<Option<Product>, StoreError> {
        Ok(self.get(product_id))
    }

    async fn page(
        &self,
        category: Option<&str>,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<Page, StoreError> {
        let rows = self.rows.lock().unwrap();
        let mut matching = rows
            .values()
            .map(|r| &r.0)
            .filter(|p| category.is_none_or(|c| p.category == c))
            .filter(|p| after.is_none_or(|a| p.product_id > a.product_id));
        let products: Vec<Product> = matching.by_ref().take(limit).cloned().collect();
        Ok(Page::new(products, matching.next().is_some(), category))
    }
}

#[async_trait]
impl PhotoRecords for MemoryProducts {
    async fn next_photo_version(&self, product_id: &str) -> Result<Option<u64>, StoreError> {
        let mut uploads = self.photo_uploads.lock().unwrap();
        if self.get(product_id).is_none() {
            return Ok(None);
        }
        let n = uploads.entry(product_id.to_owned()).or_insert(0);
        *n += 1;
        Ok(Some(*n))
    }

    async fn set_photo(
        &self,
        product_id: &str,
        version: u64,
        photo_key: &str,
        thumb_key: &str,
    ) -> Result<bool, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let Some(row) = rows.get_mut(product_id) else {
            return Ok(false);
        };
        let p = &mut row.0;
        if p.photo_version > version || (p.photo_version == version && p.thumb_key.is_some()) {
            return Ok(false);
        }
        p.photo_key = photo_key.to_owned();
        p.thumb_key = Some(thumb_key.to_owned());
        p.photo_version = version;
        Ok(true)
    }
}

/// Objects by key; presigned URLs are `memory://{key}?expires={secs}` and are counted.
#[derive(Default)]
pub struct MemoryBucket {
    pub objects: Mutex<BTreeMap<String, (Vec<u8>, String)>>,
    pub presigned: Mutex<usize>,
}

#[async_trait]
impl PhotoBucket for MemoryBucket {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), (bytes, content_type.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|o| o.0.clone())
            .ok_or_else(|| StoreError::Aws {
                operation: "S3 GetObject",
                message: format!("NoSuchKey: {key}"),
            })
    }

    async fn presign_get(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        *self.presigned.lock().unwrap() += 1;
        Ok(format!("memory://{key}?expires={}", ttl.as_secs()))
    }
}

#[derive(Default)]
pub struct RecordingJobQueue {
    pub jobs: Mutex<Vec<PhotoJob>>,
}

#[async_trait]
impl PhotoJobQueue for RecordingJobQueue {
    async fn enqueue(&self, job: &PhotoJob) -> Result<(), StoreError> {
        self.jobs.lock().unwrap().push(job.clone());
        Ok(())
    }
}

/// Job records: (status, worker, completed runs). Leases never expire here.
#[derive(Default)]
pub struct MemoryJobLog {
    pub jobs: Mutex<BTreeMap<String, (String, String, u32)>>,
}

#[async_trait]
impl JobLog for MemoryJobLog {
    async fn claim(
        &self,
        job_id: &str,
        worker: &str,
        _lease_secs: i64,
    ) -> Result<Claim, StoreError> {
        let mut jobs = self.jobs.lock().unwrap();
        match jobs.get(job_id) {
            Some((status, _, _)) if status == "done" => Ok(Claim::AlreadyDone),
            Some(_) => Ok(Claim::Busy),
            None => {
                jobs.insert(job_id.to_owned(), ("running".into(), worker.to_owned(), 0));
                Ok(Claim::Acquired)
            }
        }
    }

    async fn complete(
        &self,
        job_id: &str,
        _worker: &str,
        _outcome: &str,
    ) -> Result<(), StoreError> {
        let mut jobs = self.jobs.lock().unwrap();
        let job = jobs.get_mut(job_id).expect("completed after a claim");
        job.0 = "done".into();
        job.2 += 1;
        Ok(())
    }
}

#[derive(Default)]
pub struct RecordingPhotoPublisher {
    pub published: Mutex<Vec<ProductPhotoChanged>>,
}

#[async_trait]
impl PhotoChangePublisher for RecordingPhotoPublisher {
    async fn publish_photo(&self, change: &ProductPhotoChanged) -> Result<String, StoreError> {
        self.published.lock().unwrap().push(change.clone());
        Ok(format!("msg-{}", change.change_id))
    }
}

/// The change log in memory, sharded like the table (`shards` 0 means the default).
#[derive(Default)]
pub struct MemoryChangeLog {
    pub shards: usize,
    pub entries: Mutex<Vec<LogEntry>>,
}

impl MemoryChangeLog {
    pub fn with_shards(shards: usize) -> Self {
        Self {
            shards,
            ..Self::default()
        }
    }
}

#[async_trait]
impl ChangeLog for MemoryChangeLog {
    fn shards(&self) -> usize {
        if self.shards == 0 {
            crate::aws::change_log::DEFAULT_SHARDS
        } else {
            self.shards
        }
    }

    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<(usize, u64), StoreError> {
        let shard = crate::aws::change_log::shard_of(product_id, self.shards());
        let mut entries = self.entries.lock().unwrap();
        let seq = entries
            .iter()
            .rev()
            .find(|e| e.shard == shard)
            .map_or(1, |e| e.seq + 1);
        entries.push(LogEntry {
            shard,
            seq,
            event_type: event_type.to_owned(),
            product_id: product_id.to_owned(),
            data: data.to_owned(),
            logged_at_ms: chrono::Utc::now().timestamp_millis(),
        });
        Ok((shard, seq))
    }

    async fn read_after(
        &self,
        shard: usize,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut found: Vec<LogEntry> = self
            .entries
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.shard == shard && e.seq > after)
            .cloned()
            .collect();
        found.sort_by_key(|e| e.seq);
        found.truncate(limit);
        Ok(found)
    }

    async fn head(&self) -> Result<LogPosition, StoreError> {
        let mut position = LogPosition::start(self.shards());
        for e in self.entries.lock().unwrap().iter() {
            position.0[e.shard] = position.0[e.shard].max(e.seq);
        }
        Ok(position)
    }
}

/// `Arc<fake>` is the fake: a test hands one clone to the code under test and keeps the
/// other to look inside afterwards.
mod shared {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;

    use crate::aws::{
        CatalogReader, Claim, DeadLetter, DeadLetters, JobLog, Page, PageKey, PhotoBucket,
        PhotoChangePublisher, PhotoJob, PhotoJobQueue, PhotoRecords, StoreError,
    };
    use crate::{Product, ProductPhotoChanged};

    #[async_trait]
    impl<T: CatalogReader + ?Sized> CatalogReader for Arc<T> {
        async fn product(&self, product_id: &str) -> Result<Option<Product>, StoreError> {
            (**self).product(product_id).await
        }
        async fn page(
            &self,
            category: Option<&str>,
            limit: usize,
            after: Option<&PageKey>,
        ) -> Result<Page, StoreError> {
            (**self).page(category, limit, after).await
        }
    }

    #[async_trait]
    impl<T: PhotoRecords + ?Sized> PhotoRecords for Arc<T> {
        async fn next_photo_version(&self, product_id: &str) -> Result<Option<u64>, StoreError> {
            (**self).next_photo_version(product_id).await
        }
        async fn set_photo(
            &self,
            product_id: &str,
            version: u64,
            photo_key: &str,
            thumb_key: &str,
        ) -> Result<bool, StoreError> {
            (**self)
                .set_photo(product_id, version, photo_key, thumb_key)
                .await
        }
    }

    #[async_trait]
    impl<T: PhotoBucket + ?Sized> PhotoBucket for Arc<T> {
        async fn put(
            &self,
            key: &str,
            bytes: Vec<u8>,
            content_type: &str,
        ) -> Result<(), StoreError> {
            (**self).put(key, bytes, content_type).await
        }
        async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
            (**self).get(key).await
        }
        async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
            (**self).presign_get(key, ttl).await
        }
    }

    #[async_trait]
    impl<T: PhotoJobQueue + ?Sized> PhotoJobQueue for Arc<T> {
        async fn enqueue(&self, job: &PhotoJob) -> Result<(), StoreError> {
            (**self).enqueue(job).await
        }
    }

    #[async_trait]
    impl<T: JobLog + ?Sized> JobLog for Arc<T> {
        async fn claim(
            &self,
            job_id: &str,
            worker: &str,
            lease_secs: i64,
        ) -> Result<Claim, StoreError> {
            (**self).claim(job_id, worker, lease_secs).await
        }
        async fn complete(
            &self,
            job_id: &str,
            worker: &str,
            outcome: &str,
        ) -> Result<(), StoreError> {
            (**self).complete(job_id, worker, outcome).await
        }
    }

    #[async_trait]
    impl<T: PhotoChangePublisher + ?Sized> PhotoChangePublisher for Arc<T> {
        async fn publish_photo(&self, change: &ProductPhotoChanged) -> Result<String, StoreError> {
            (**self).publish_photo(change).await
        }
    }

    #[async_trait]
    impl<T: DeadLetters + ?Sized> DeadLetters for Arc<T> {
        async fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
            (**self).send(letter).await
        }
    }
}
