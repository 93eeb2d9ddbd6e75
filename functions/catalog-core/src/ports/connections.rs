//! The connections table as the functions see it: who is connected and what each one subscribed to.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::DownstreamError;

/// A connected WebSocket client and the products it asked for (`None`: all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub connection_id: String,
    pub product_ids: Option<BTreeSet<String>>,
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
    /// Returns false if the connection is not (or no longer) recorded.
    async fn set_filter(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
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
        ) -> Result<(), DownstreamError> {
            self.rows
                .lock()
                .unwrap()
                .insert(connection_id.to_owned(), None);
            Ok(())
        }

        async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError> {
            self.rows.lock().unwrap().remove(connection_id);
            Ok(())
        }

        async fn set_filter(
            &self,
            connection_id: &str,
            product_ids: Option<&BTreeSet<String>>,
        ) -> Result<bool, DownstreamError> {
            Ok(match self.rows.lock().unwrap().get_mut(connection_id) {
                Some(filter) => {
                    *filter = product_ids.cloned();
                    true
                }
                None => false,
            })
        }

        async fn all(&self) -> Result<Vec<Connection>, DownstreamError> {
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
}
