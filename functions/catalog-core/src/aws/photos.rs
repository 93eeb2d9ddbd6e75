use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Where an uploaded original goes: one object per photo version, never overwritten.
/// How long presigned photo URLs live unless `PHOTO_URL_TTL_SECONDS` says otherwise: the
/// REST API's redirects and the thumbnailer's push events use the same figure.
pub const DEFAULT_URL_TTL_SECONDS: u64 = 900;

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
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// A URL that GETs the object without credentials until `ttl` has passed.
    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError>;
}

#[derive(Clone)]
pub struct S3Photos {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Photos {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl PhotoBucket for S3Photos {
    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StoreError::aws("S3 PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::aws("S3 GetObject", e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::aws("S3 GetObject body", e))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, StoreError> {
        let config =
            PresigningConfig::expires_in(ttl).map_err(|e| StoreError::aws("S3 presign", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| StoreError::aws("S3 presign GetObject", e))?;
        Ok(request.uri().to_owned())
    }
}

/// The photo-jobs queue.
#[async_trait]
pub trait PhotoJobQueue: Send + Sync {
    async fn enqueue(&self, job: &PhotoJob) -> Result<(), StoreError>;
}

#[derive(Clone)]
pub struct SqsPhotoJobs {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsPhotoJobs {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl PhotoJobQueue for SqsPhotoJobs {
    async fn enqueue(&self, job: &PhotoJob) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(job).expect("a PhotoJob serializes"))
            .send()
            .await
            .map_err(|e| StoreError::aws("SQS SendMessage (photo jobs)", e))?;
        Ok(())
    }
}
