//! Publishing events to the product-changes topic (pub/sub).

use async_trait::async_trait;

use super::DownstreamError;
use crate::{ProductChanged, ProductPhotoChanged};

#[async_trait]
pub trait ChangePublisher: Send + Sync {
    /// Publishes one change; Ok means SNS accepted it.
    async fn publish(&self, change: &ProductChanged) -> Result<String, DownstreamError>;
}

/// Publishes a photo change (the thumbnailer).
#[async_trait]
pub trait PhotoChangePublisher: Send + Sync {
    async fn publish_photo(&self, change: &ProductPhotoChanged) -> Result<String, DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::sync::Arc;

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;
    use crate::{ProductChanged, ProductPhotoChanged};

    /// Accepts changes until `fail_after` publishes have succeeded.
    #[derive(Default)]
    pub struct RecordingPublisher {
        pub published: Mutex<Vec<ProductChanged>>,
        pub fail_after: Option<usize>,
    }

    #[async_trait]
    impl ChangePublisher for RecordingPublisher {
        async fn publish(&self, change: &ProductChanged) -> Result<String, DownstreamError> {
            let mut published = self.published.lock().unwrap();
            if self.fail_after.is_some_and(|n| published.len() >= n) {
                return Err(DownstreamError::Aws {
                    operation: "SNS Publish",
                    message: "injected outage".into(),
                });
            }
            published.push(change.clone());
            Ok(format!("msg-{}", published.len()))
        }
    }
    #[derive(Clone, Default)]
    pub struct RecordingPhotoPublisher {
        pub published: Arc<Mutex<Vec<ProductPhotoChanged>>>,
    }

    #[async_trait]
    impl PhotoChangePublisher for RecordingPhotoPublisher {
        async fn publish_photo(
            &self,
            change: &ProductPhotoChanged,
        ) -> Result<String, DownstreamError> {
            self.published.lock().unwrap().push(change.clone());
            Ok(format!("msg-{}", change.change_id))
        }
    }
}
