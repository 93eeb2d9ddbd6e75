//! The photo-jobs worker. Each job makes one thumbnail: the job log gives a job to one
//! worker at a time and remembers finished jobs, so a redelivered or duplicated message
//! is never processed twice. A job that can never succeed (unreadable message, corrupt
//! image) goes to the dead-letter queue with its reason.

use std::io::Cursor;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use catalog_core::change::PRODUCT_PHOTO_CHANGED;
use catalog_core::ports::{
    photos, Claim, DeadLetters, DownstreamError, JobLog, PhotoBucket, PhotoChangePublisher,
    PhotoJob, PhotoRecords,
};
use catalog_core::sqs_batch::{self, Order, RecordFailure, RecordHandler};
use catalog_core::ProductPhotoChanged;
use tracing::{info, info_span};

/// The longest side of a thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 64;

/// Decodes a JPEG or PNG and returns a PNG thumbnail that fits in `side`×`side`.
pub fn make_thumbnail(original: &[u8], side: u32) -> Result<Vec<u8>, image::ImageError> {
    let picture = image::load_from_memory(original)?;
    let thumb = picture.thumbnail(side, side);
    let mut out = Cursor::new(Vec::new());
    thumb.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("not a photo job: {0}")]
    Unreadable(String),
    #[error("the original {key} is not a readable image: {reason}")]
    CorruptImage { key: String, reason: String },
    #[error("another worker holds job {0}; it returns to the queue")]
    Busy(String),
    #[error(transparent)]
    Store(#[from] DownstreamError),
}

impl RecordFailure for JobError {
    fn is_poison(&self) -> bool {
        matches!(
            self,
            JobError::Unreadable(_) | JobError::CorruptImage { .. }
        )
    }
}

/// One batch's jobs as the shared SQS batch loop sees them.
struct Jobs<'a> {
    thumbnailer: &'a Thumbnailer,
    worker: &'a str,
}

impl RecordHandler for Jobs<'_> {
    type Counts = JobCounts;
    type Failure = JobError;

    fn span(&self, message_id: &str) -> tracing::Span {
        info_span!("job", message_id = %message_id, job_id = tracing::field::Empty)
    }

    async fn handle(&self, record: &SqsMessage, counts: &mut JobCounts) -> Result<(), JobError> {
        self.thumbnailer
            .handle_record(record, self.worker, counts)
            .await
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobCounts {
    pub received: usize,
    pub made: usize,
    pub already_done: usize,
    pub superseded: usize,
    pub dead_lettered: usize,
    pub failed: usize,
}

pub struct Thumbnailer {
    pub bucket: Box<dyn PhotoBucket>,
    pub products: Box<dyn PhotoRecords>,
    pub jobs: Box<dyn JobLog>,
    pub publisher: Box<dyn PhotoChangePublisher>,
    pub dead_letters: Box<dyn DeadLetters>,
    /// How long a claim keeps other workers off a job; after that a crashed worker's job can be taken over.
    pub lease_secs: i64,
    /// How long the URLs in `ProductPhotoChanged` stay valid.
    pub url_ttl: Duration,
}

impl Thumbnailer {
    pub async fn handle_batch(
        &self,
        event: SqsEvent,
        worker: &str,
    ) -> (SqsBatchResponse, JobCounts) {
        let mut counts = JobCounts {
            received: event.records.len(),
            ..JobCounts::default()
        };
        let jobs = Jobs {
            thumbnailer: self,
            worker,
        };
        let settled = sqs_batch::process(
            &jobs,
            self.dead_letters.as_ref(),
            &event.records,
            Order::Independent,
            &mut counts,
        )
        .await;
        counts.dead_lettered += settled.dead_lettered;
        counts.failed += settled.retry.len();
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = settled.batch_item_failures();
        (response, counts)
    }

    async fn handle_record(
        &self,
        record: &SqsMessage,
        worker: &str,
        counts: &mut JobCounts,
    ) -> Result<(), JobError> {
        let job: PhotoJob = serde_json::from_str(record.body.as_deref().unwrap_or(""))
            .map_err(|e| JobError::Unreadable(e.to_string()))?;
        tracing::Span::current().record("job_id", job.job_id.as_str());
        match self
            .jobs
            .claim(&job.job_id, worker, self.lease_secs)
            .await?
        {
            Claim::Acquired => {}
            Claim::AlreadyDone => {
                counts.already_done += 1;
                info!(job_id = %job.job_id, "job already done; redelivery skipped");
                return Ok(());
            }
            Claim::Busy => return Err(JobError::Busy(job.job_id)),
        }
        let original = self.bucket.get(&job.photo_key).await?;
        let thumb = match make_thumbnail(&original, THUMB_SIDE) {
            Ok(thumb) => thumb,
            Err(e) => {
                // Finished, unsuccessfully: a retry would fail the same way.
                self.jobs
                    .complete(&job.job_id, worker, "corrupt-image")
                    .await?;
                return Err(JobError::CorruptImage {
                    key: job.photo_key,
                    reason: e.to_string(),
                });
            }
        };
        let thumb_key = photos::thumb_key(&job.product_id, job.photo_version);
        self.bucket.put(&thumb_key, thumb, "image/png").await?;
        let current = self
            .products
            .set_photo(
                &job.product_id,
                job.photo_version,
                &job.photo_key,
                &thumb_key,
            )
            .await?;
        if current {
            let change = ProductPhotoChanged {
                event_type: PRODUCT_PHOTO_CHANGED.to_owned(),
                change_id: job.job_id.clone(),
                product_id: job.product_id.clone(),
                photo_version: job.photo_version,
                full_url: self
                    .bucket
                    .presign_get(&job.photo_key, self.url_ttl)
                    .await?,
                thumb_url: self.bucket.presign_get(&thumb_key, self.url_ttl).await?,
                urls_expire_at: chrono::Utc::now() + self.url_ttl,
                changed_at: chrono::Utc::now(),
            };
            self.publisher.publish_photo(&change).await?;
            counts.made += 1;
            info!(product_id = %job.product_id, version = job.photo_version, thumb_key, "thumbnail made and announced");
        } else {
            counts.superseded += 1;
            info!(product_id = %job.product_id, version = job.photo_version, "a newer photo is current; thumbnail kept, not announced");
        }
        self.jobs
            .complete(
                &job.job_id,
                worker,
                if current { "made" } else { "superseded" },
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
