//! The photos bucket and the photo-jobs queue (point-to-point: one worker per job).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::DownstreamError;

/// How long presigned photo URLs live unless `PHOTO_URL_TTL_SECONDS` says otherwise: the
/// REST API's redirects and the thumbnailer's push events use the same figure.
pub const DEFAULT_URL_TTL_SECONDS: u64 = 900;

/// Where an uploaded original goes: one object per photo version, never overwritten.
pub fn original_key(product_id: &str, version: u64, extension: &str) -> String {
    format!("photos/original/{product_id}/v{version}.{extension}")
}

/// Where the thumbnail of a photo version goes.
pub fn thumb_key(product_id: &str, version: u64) -> String {
    format!("photos/thumb/{product_id}/v{version}.png")
}

/// One thumbnail to make: the message on the photo-jobs queue (point-to-point).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhotoJob {
    pub job_id: String,
    pub product_id: String,
    pub photo_key: String,
    pub photo_version: u64,
}

impl PhotoJob {
    pub fn new(product_id: &str, photo_key: &str, photo_version: u64) -> Self {
        Self {
            job_id: uuid::Uuid::new_v4().to_string(),
            product_id: product_id.to_owned(),
            photo_key: photo_key.to_owned(),
            photo_version,
        }
    }
}

/// The photos bucket.
#[async_trait]
pub trait PhotoBucket: Send + Sync {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), DownstreamError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, DownstreamError>;
    /// A URL that GETs the object without credentials until `ttl` has passed.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, DownstreamError>;
}

/// The photo-jobs queue.
#[async_trait]
pub trait PhotoJobQueue: Send + Sync {
    async fn enqueue(&self, job: &PhotoJob) -> Result<(), DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::sync::Arc;

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    /// An object's bytes and content type.
    pub type StoredObject = (Vec<u8>, String);

    /// Objects by key; presigned URLs are `memory://{key}?expires={secs}` and are counted.
    /// A clone shares the objects, so a test can keep one to look inside.
    #[derive(Clone, Default)]
    pub struct MemoryBucket {
        pub objects: Arc<Mutex<BTreeMap<String, StoredObject>>>,
        pub presigned: Arc<Mutex<usize>>,
    }

    #[async_trait]
    impl PhotoBucket for MemoryBucket {
        async fn put(
            &self,
            key: &str,
            bytes: Vec<u8>,
            content_type: &str,
        ) -> Result<(), DownstreamError> {
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_owned(), (bytes, content_type.to_owned()));
            Ok(())
        }

        async fn get(&self, key: &str) -> Result<Vec<u8>, DownstreamError> {
            self.objects
                .lock()
                .unwrap()
                .get(key)
                .map(|o| o.0.clone())
                .ok_or_else(|| DownstreamError::Aws {
                    operation: "S3 GetObject",
                    message: format!("NoSuchKey: {key}"),
                })
        }

        async fn presign_get(
            &self,
            key: &str,
            ttl: std::time::Duration,
        ) -> Result<String, DownstreamError> {
            *self.presigned.lock().unwrap() += 1;
            Ok(format!("memory://{key}?expires={}", ttl.as_secs()))
        }
    }

    /// A clone shares the jobs.
    #[derive(Clone, Default)]
    pub struct RecordingJobQueue {
        pub jobs: Arc<Mutex<Vec<PhotoJob>>>,
    }

    #[async_trait]
    impl PhotoJobQueue for RecordingJobQueue {
        async fn enqueue(&self, job: &PhotoJob) -> Result<(), DownstreamError> {
            self.jobs.lock().unwrap().push(job.clone());
            Ok(())
        }
    }
}
