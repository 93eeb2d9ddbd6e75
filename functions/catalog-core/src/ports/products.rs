//! The products table as each function sees it: applying changes, the generator's reads and records, catalogue pages and photo versions.

use async_trait::async_trait;

use super::DownstreamError;
use crate::generate::ProductState;
use crate::{ApplyOutcome, Product, ProductChanged};

#[async_trait]
pub trait ProductStore: Send + Sync {
    /// Writes the change only if it is newer than the stored version.
    async fn apply_change(
        &self,
        change: &ProductChanged,
    ) -> Result<ApplyOutcome<Product>, DownstreamError>;
    /// The whole catalogue, read strongly.
    async fn all_products(&self) -> Result<Vec<Product>, DownstreamError>;
    /// These products (those that exist), read strongly: what a filtered snapshot costs.
    async fn products(
        &self,
        product_ids: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<Product>, DownstreamError>;
}

/// What the generator reads and records.
#[async_trait]
pub trait GeneratorStore: Send + Sync {
    async fn generator_states(&self) -> Result<Vec<ProductState>, DownstreamError>;
    /// Records that `version` was published; false if a newer one already was.
    async fn record_published(
        &self,
        product_id: &str,
        version: u64,
    ) -> Result<bool, DownstreamError>;
}

/// One page of the catalogue, in product-id order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub products: Vec<Product>,
    /// Where the next page starts, if there may be one.
    pub next: Option<PageKey>,
}

impl Page {
    /// A page of `products`; `more` says whether the listing may go on after it.
    pub fn new(products: Vec<Product>, more: bool, category: Option<&str>) -> Self {
        let next = match (more, products.last()) {
            (true, Some(last)) => Some(PageKey {
                product_id: last.product_id.clone(),
                category: category.map(str::to_owned),
            }),
            _ => None,
        };
        Page { products, next }
    }
}

/// The last product of a page (the REST API turns it into an opaque cursor).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageKey {
    pub product_id: String,
    /// Set when paging through one category.
    pub category: Option<String>,
}

/// What the REST API reads.
#[async_trait]
pub trait CatalogReader: Send + Sync {
    async fn product(&self, product_id: &str) -> Result<Option<Product>, DownstreamError>;
    async fn page(
        &self,
        category: Option<&str>,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<Page, DownstreamError>;
}

/// The photo fields of a product record.
#[async_trait]
pub trait PhotoRecords: Send + Sync {
    /// Reserves the product's next photo version; `None` if the product does not exist.
    async fn next_photo_version(&self, product_id: &str) -> Result<Option<u64>, DownstreamError>;
    /// Points the product at a photo and its thumbnail, unless it already shows that
    /// version with a thumbnail or a newer one; returns whether it did.
    async fn set_photo(
        &self,
        product_id: &str,
        version: u64,
        photo_key: &str,
        thumb_key: &str,
    ) -> Result<bool, DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::sync::Arc;

    use crate::version::{classify, Classification};
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;
    use crate::{ApplyOutcome, Product, ProductChanged, StockAndPrice};

    /// A stored product, the id of the change that produced it, and its published version.
    type ProductRow = (Product, Option<String>, u64);

    /// A clone shares the rows, so a test can keep one to look inside.
    #[derive(Clone, Default)]
    pub struct MemoryProducts {
        pub rows: Arc<Mutex<BTreeMap<String, ProductRow>>>,
        /// Product ids whose writes fail, as a downstream outage would.
        pub failing: Arc<Mutex<BTreeSet<String>>>,
        pub photo_uploads: Arc<Mutex<HashMap<String, u64>>>,
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
        ) -> Result<ApplyOutcome<Product>, DownstreamError> {
            if self.failing.lock().unwrap().contains(&change.product_id) {
                return Err(DownstreamError::Aws {
                    operation: "UpdateItem product",
                    message: "injected failure".into(),
                });
            }
            let mut rows = self.rows.lock().unwrap();
            let row = rows
                .get_mut(&change.product_id)
                .ok_or_else(|| DownstreamError::UnknownProduct(change.product_id.clone()))?;
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

        async fn all_products(&self) -> Result<Vec<Product>, DownstreamError> {
            Ok(self
                .rows
                .lock()
                .unwrap()
                .values()
                .map(|r| r.0.clone())
                .collect())
        }

        async fn products(
            &self,
            product_ids: &std::collections::BTreeSet<String>,
        ) -> Result<Vec<Product>, DownstreamError> {
            let rows = self.rows.lock().unwrap();
            Ok(product_ids
                .iter()
                .filter_map(|id| rows.get(id).map(|r| r.0.clone()))
                .collect())
        }
    }

    #[async_trait]
    impl GeneratorStore for MemoryProducts {
        async fn generator_states(&self) -> Result<Vec<ProductState>, DownstreamError> {
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

        async fn record_published(
            &self,
            product_id: &str,
            version: u64,
        ) -> Result<bool, DownstreamError> {
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
    /// Rows in product-id order, like the catalogue and category indexes.
    #[async_trait]
    impl CatalogReader for MemoryProducts {
        async fn product(&self, product_id: &str) -> Result<Option<Product>, DownstreamError> {
            Ok(self.get(product_id))
        }

        async fn page(
            &self,
            category: Option<&str>,
            limit: usize,
            after: Option<&PageKey>,
        ) -> Result<Page, DownstreamError> {
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
        async fn next_photo_version(
            &self,
            product_id: &str,
        ) -> Result<Option<u64>, DownstreamError> {
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
        ) -> Result<bool, DownstreamError> {
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
}
