//! Pushing frames to connected clients (PostToConnection on AWS).

use async_trait::async_trait;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// 410: the client is gone. Its record should be deleted; retrying is pointless.
    #[error("connection is gone")]
    Gone,
    #[error("push failed: {0}")]
    Failed(String),
    #[error(transparent)]
    CircuitOpen(#[from] crate::breaker::Rejected),
}

#[async_trait]
pub trait Pusher: Send + Sync {
    async fn push(&self, connection_id: &str, payload: &str) -> Result<(), PushError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::collections::{BTreeSet, HashMap};
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;

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
}
