//! The connections table as the functions see it: who is connected and what each one subscribed to.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::DownstreamError;

/// A connected WebSocket client, the products it asked for (`None`: all), and whether it
/// takes a batch's changes as one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub product_ids: Option<BTreeSet<String>>,
    pub batched: bool,
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    async fn add(
        &self,
        connection_id: &str,
        connected_at_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DownstreamError>;
    async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError>;
    /// Records what the connection subscribed to. Returns false if the connection is not
    /// (or no longer) recorded.
    async fn subscribe(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
        batched: bool,
    ) -> Result<bool, DownstreamError>;
    async fn all(&self) -> Result<Vec<Connection>, DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    #[derive(Default)]
    pub struct MemoryConnections {
        pub rows: Mutex<BTreeMap<String, Connection>>,
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
        ) -> Result<(), DownstreamError> {
            self.rows.lock().unwrap().insert(
                connection_id.to_owned(),
                Connection {
                    connection_id: connection_id.to_owned(),
                    product_ids: None,
                    batched: false,
                },
            );
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
            Ok(match self.rows.lock().unwrap().get_mut(connection_id) {
                Some(row) => {
                    row.product_ids = product_ids.cloned();
                    row.batched = batched;
                    true
                }
                None => false,
            })
        }

        async fn all(&self) -> Result<Vec<Connection>, DownstreamError> {
            Ok(self.rows.lock().unwrap().values().cloned().collect())
        }
    }
}
