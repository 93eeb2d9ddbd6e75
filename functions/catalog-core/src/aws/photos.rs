use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::ports::photos::*;
use crate::ports::DownstreamError;

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
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(), DownstreamError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("S3 PutObject", e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, DownstreamError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| DownstreamError::aws("S3 GetObject", e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| DownstreamError::aws("S3 GetObject body", e))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn presign_get(&self, key: &str, ttl: Duration) -> Result<String, DownstreamError> {
        let config =
            PresigningConfig::expires_in(ttl).map_err(|e| DownstreamError::aws("S3 presign", e))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| DownstreamError::aws("S3 presign GetObject", e))?;
        Ok(request.uri().to_owned())
    }
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
    async fn enqueue(&self, job: &PhotoJob) -> Result<(), DownstreamError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(serde_json::to_string(job).expect("a PhotoJob serializes"))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("SQS SendMessage (photo jobs)", e))?;
        Ok(())
    }
}
