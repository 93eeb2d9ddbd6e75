//! Adapters wrapped in a circuit breaker: the same traits, but calls are refused
//! at once while the downstream's breaker is open.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::breaker::CircuitBreaker;
use crate::ports::{
    CatalogReader, Connection, ConnectionStore, DownstreamError, Page, PageKey, PhotoRecords,
    ProductStore, PushError, Pusher,
};
use crate::{ApplyOutcome, Product, ProductChanged};

pub struct Guarded<T> {
    pub inner: T,
    pub breaker: Arc<CircuitBreaker>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, breaker: Arc<CircuitBreaker>) -> Self {
        Self { inner, breaker }
    }

    async fn store_call<R>(
        &self,
        call: impl std::future::Future<Output = Result<R, DownstreamError>>,
    ) -> Result<R, DownstreamError> {
        self.breaker
            .call(call, DownstreamError::is_downstream_failure)
            .await?
    }
}

#[async_trait]
impl<T: ProductStore> ProductStore for Guarded<T> {
    async fn apply_change(
        &self,
        change: &ProductChanged,
    ) -> Result<ApplyOutcome<Product>, DownstreamError> {
        self.store_call(self.inner.apply_change(change)).await
    }

    async fn all_products(&self) -> Result<Vec<Product>, DownstreamError> {
        self.store_call(self.inner.all_products()).await
    }

    async fn products(
        &self,
        product_ids: &BTreeSet<String>,
    ) -> Result<Vec<Product>, DownstreamError> {
        self.store_call(self.inner.products(product_ids)).await
    }
}

#[async_trait]
impl<T: CatalogReader> CatalogReader for Guarded<T> {
    async fn product(&self, product_id: &str) -> Result<Option<Product>, DownstreamError> {
        self.store_call(self.inner.product(product_id)).await
    }

    async fn page(
        &self,
        category: Option<&str>,
        limit: usize,
        after: Option<&PageKey>,
    ) -> Result<Page, DownstreamError> {
        self.store_call(self.inner.page(category, limit, after))
            .await
    }
}

#[async_trait]
impl<T: PhotoRecords> PhotoRecords for Guarded<T> {
    async fn next_photo_version(&self, product_id: &str) -> Result<Option<u64>, DownstreamError> {
        self.store_call(self.inner.next_photo_version(product_id))
            .await
    }

    async fn set_photo(
        &self,
        product_id: &str,
        version: u64,
        photo_key: &str,
        thumb_key: &str,
    ) -> Result<bool, DownstreamError> {
        self.store_call(
            self.inner
                .set_photo(product_id, version, photo_key, thumb_key),
        )
        .await
    }
}

#[async_trait]
impl<T: ConnectionStore> ConnectionStore for Guarded<T> {
    fn shards(&self) -> usize {
        self.inner.shards()
    }

    async fn add(
        &self,
        connection_id: &str,
        connected_at_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DownstreamError> {
        self.store_call(self.inner.add(connection_id, connected_at_ms, expires_at_s))
            .await
    }

    async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError> {
        self.store_call(self.inner.remove(connection_id)).await
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
        batched: bool,
    ) -> Result<bool, DownstreamError> {
        self.store_call(self.inner.subscribe(connection_id, product_ids, batched))
            .await
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, DownstreamError> {
        self.store_call(self.inner.get(connection_id)).await
    }

    async fn revisions(&self) -> Result<Vec<u64>, DownstreamError> {
        self.store_call(self.inner.revisions()).await
    }

    async fn shard(&self, shard: usize) -> Result<Vec<Connection>, DownstreamError> {
        self.store_call(self.inner.shard(shard)).await
    }
}

#[async_trait]
impl<T: Pusher> Pusher for Guarded<T> {
    /// A 410 is the API answering correctly about a gone client: it does not count against the breaker.
    async fn push(&self, connection_id: &str, payload: &str) -> Result<(), PushError> {
        let failure = |e: &PushError| matches!(e, PushError::Failed(_));
        self.breaker
            .call(self.inner.push(connection_id, payload), failure)
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{BreakerConfig, BreakerState};
    use crate::fakes::{product, MemoryProducts, RecordingPusher};

    fn breaker() -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(
            "test",
            BreakerConfig {
                min_calls: 2,
                ..BreakerConfig::default()
            },
        ))
    }

    #[tokio::test]
    async fn store_errors_that_are_not_outages_do_not_trip() {
        let store = Guarded::new(MemoryProducts::with([product("p-1", 100, 1)]), breaker());
        let mut change = crate::fakes::change_for("p-404", 1);
        for _ in 0..3 {
            assert!(matches!(
                store.apply_change(&change).await,
                Err(DownstreamError::UnknownProduct(_))
            ));
        }
        assert_eq!(store.breaker.state(), BreakerState::Closed);
        store.inner.failing.lock().unwrap().insert("p-1".into());
        change.product_id = "p-1".into();
        // 3 failures in 6 calls reach the 50 % ratio.
        for _ in 0..3 {
            assert!(matches!(
                store.apply_change(&change).await,
                Err(DownstreamError::Aws { .. })
            ));
        }
        assert!(matches!(
            store.apply_change(&change).await,
            Err(DownstreamError::CircuitOpen(_))
        ));
    }

    #[tokio::test]
    async fn gone_clients_do_not_trip_but_failed_pushes_do() {
        let pusher = Guarded::new(RecordingPusher::default(), breaker());
        pusher.inner.gone.lock().unwrap().insert("gone".into());
        for _ in 0..3 {
            assert_eq!(pusher.push("gone", "{}").await, Err(PushError::Gone));
        }
        assert_eq!(pusher.breaker.state(), BreakerState::Closed);
        pusher.inner.failing.lock().unwrap().insert("sick".into());
        for _ in 0..3 {
            assert!(matches!(
                pusher.push("sick", "{}").await,
                Err(PushError::Failed(_))
            ));
        }
        assert!(matches!(
            pusher.push("fine", "{}").await,
            Err(PushError::CircuitOpen(_))
        ));
        assert!(
            pusher.inner.frames("fine").is_empty(),
            "nothing is sent while open"
        );
    }
}
