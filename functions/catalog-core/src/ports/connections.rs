//! The connections table as the functions see it: who is connected and what each one subscribed to.
//!
//! Connections are split into shards by connection id. Each shard has a revision that every
//! connect and subscribe raises after writing its record, so a reader that saw a revision
//! sees every subscription written before it, and a consumer re-reads only the shards whose
//! revision moved instead of scanning the table (docs/design.md, "Convergence").

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::DownstreamError;

/// How many shards the connections are split into unless `CONNECTION_SHARDS` says otherwise.
pub const DEFAULT_CONNECTION_SHARDS: usize = 8;

/// A connected WebSocket client, the products it asked for (`None`: all), and whether it
/// takes a batch's changes as one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub product_ids: Option<BTreeSet<String>>,
    pub batched: bool,
    /// When `$connect` recorded it (epoch ms). API Gateway answers 410 for a connection
    /// whose `$connect` has not returned yet, so a young connection's 410 is not its end.
    pub connected_at_ms: i64,
}

/// The shard a connection's record lives in: FNV-1a of its id.
pub fn connection_shard(connection_id: &str, shards: usize) -> usize {
    super::change_log::shard_of(connection_id, shards)
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// How many shards the records are split into.
    fn shards(&self) -> usize;
    /// Records a new connection (no filter: every product) and raises its shard's revision.
    async fn add(
        &self,
        connection_id: &str,
        connected_at_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DownstreamError>;
    async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError>;
    /// Records what the connection subscribed to and raises its shard's revision. Returns
    /// false if the connection is not (or no longer) recorded.
    async fn subscribe(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
        batched: bool,
    ) -> Result<bool, DownstreamError>;
    /// One connection's record, read strongly.
    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, DownstreamError>;
    /// Every shard's revision, read strongly.
    async fn revisions(&self) -> Result<Vec<u64>, DownstreamError>;
    /// One shard's live connections, read strongly.
    async fn shard(&self, shard: usize) -> Result<Vec<Connection>, DownstreamError>;
    /// Every live connection (tools and tests; the consumer reads by shard).
    async fn all(&self) -> Result<Vec<Connection>, DownstreamError> {
        let mut all = Vec::new();
        for shard in 0..self.shards() {
            all.extend(self.shard(shard).await?);
        }
        Ok(all)
    }
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    /// Records and shard revisions in memory; clones share them.
    #[derive(Clone, Default)]
    pub struct MemoryConnections {
        pub rows: Arc<Mutex<BTreeMap<String, Connection>>>,
        pub revisions: Arc<Mutex<BTreeMap<usize, u64>>>,
        /// How many times a shard's connections were read.
        pub shard_reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl MemoryConnections {
        pub fn ids(&self) -> Vec<String> {
            self.rows.lock().unwrap().keys().cloned().collect()
        }

        fn raise(&self, connection_id: &str) {
            let shard = connection_shard(connection_id, self.shards());
            *self.revisions.lock().unwrap().entry(shard).or_default() += 1;
        }
    }

    #[async_trait]
    impl ConnectionStore for MemoryConnections {
        fn shards(&self) -> usize {
            DEFAULT_CONNECTION_SHARDS
        }

        async fn add(
            &self,
            connection_id: &str,
            connected_at_ms: i64,
            _expires_at_s: i64,
        ) -> Result<(), DownstreamError> {
            self.rows.lock().unwrap().insert(
                connection_id.to_owned(),
                Connection {
                    connection_id: connection_id.to_owned(),
                    product_ids: None,
                    batched: false,
                    connected_at_ms,
                },
            );
            self.raise(connection_id);
            Ok(())
        }

        async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError> {
            self.rows.lock().unwrap().remove(connection_id);
            Ok(())
        }

        async fn subscribe(
            &self,
            connection_id: &str,
            product_ids: Option<&BTreeSet<String>>,
            batched: bool,
        ) -> Result<bool, DownstreamError> {
            let found = match self.rows.lock().unwrap().get_mut(connection_id) {
                Some(row) => {
                    row.product_ids = product_ids.cloned();
                    row.batched = batched;
                    true
                }
                None => false,
            };
            if found {
                self.raise(connection_id);
            }
            Ok(found)
        }

        async fn get(&self, connection_id: &str) -> Result<Option<Connection>, DownstreamError> {
            Ok(self.rows.lock().unwrap().get(connection_id).cloned())
        }

        async fn revisions(&self) -> Result<Vec<u64>, DownstreamError> {
            let revisions = self.revisions.lock().unwrap();
            Ok((0..self.shards())
                .map(|s| revisions.get(&s).copied().unwrap_or(0))
                .collect())
        }

        async fn shard(&self, shard: usize) -> Result<Vec<Connection>, DownstreamError> {
            self.shard_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self
                .rows
                .lock()
                .unwrap()
                .values()
                .filter(|c| connection_shard(&c.connection_id, self.shards()) == shard)
                .cloned()
                .collect())
        }
    }
}
