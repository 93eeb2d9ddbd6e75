//! Applies `ProductChanged` events from SQS to the products table and pushes the
//! new state to every subscribed WebSocket client; `ProductPhotoChanged` events
//! (already recorded by the thumbnailer) are pushed as they are.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use catalog_core::aws::{
    dead_letter_record, retry_later, ChangeLog, Connection, ConnectionStore, DeadLetters,
    ProductStore, PushError, Pusher, StoreError,
};
use catalog_core::frames::{wants, ServerFrame};
use catalog_core::{ApplyOutcome, CatalogEvent, ChangeError, ProductChanged};
use futures::stream::{self, StreamExt};
use tracing::{debug, info, info_span, warn, Instrument};

pub mod faults;

/// What happened to the messages of one batch, logged and emitted as metrics once per invocation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchCounts {
    pub received: usize,
    pub applied: usize,
    pub duplicate: usize,
    pub stale: usize,
    /// ProductPhotoChanged events pushed.
    pub photos: usize,
    pub malformed: usize,
    pub failed: usize,
    pub pushes_sent: usize,
    pub pushes_gone: usize,
    pub pushes_failed: usize,
    /// Now minus each change's `changedAt`, for every change applied or re-pushed.
    pub lag_ms: Vec<f64>,
}

impl BatchCounts {
    pub fn add_to(&self, metrics: &mut catalog_core::metrics::MetricSet) {
        metrics
            .count("ChangesProcessed", self.received)
            .count("ChangesApplied", self.applied)
            .count("ChangesDuplicate", self.duplicate)
            .count("ChangesStale", self.stale)
            .count("PhotoChanges", self.photos)
            .count("ChangesMalformed", self.malformed)
            .count("ChangesFailed", self.failed)
            .count("PushesSent", self.pushes_sent)
            .count("PushesGone", self.pushes_gone)
            .count("PushesFailed", self.pushes_failed)
            .milliseconds("EndToEndLagMs", &self.lag_ms);
    }
}

#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Malformed(#[from] ChangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{failed} of {attempted} pushes failed; the change will be pushed again")]
    Push { failed: usize, attempted: usize },
}

pub struct Consumer<P, C, U, D, L> {
    pub products: P,
    pub connections: C,
    pub pusher: U,
    /// Where poison messages go at once, with their reason.
    pub dead_letters: D,
    /// Every pushed event, numbered, for the SSE stream and its resume.
    pub change_log: L,
    /// How many PostToConnection calls run at once.
    pub push_concurrency: usize,
    /// Test-only failures; inert unless built with the `fault-injection` feature.
    pub faults: faults::Faults,
}

impl<P: ProductStore, C: ConnectionStore, U: Pusher, D: DeadLetters, L: ChangeLog>
    Consumer<P, C, U, D, L>
{
    /// Handles one SQS batch. A poison message (undeserializable, unknown type,
    /// impossible values) goes straight to the dead-letter queue with its reason.
    /// Any other failure is reported on its own (`ReportBatchItemFailures`), so only
    /// that message returns to the queue; after maxReceiveCount the queue's redrive
    /// policy moves it to the dead-letter queue too.
    pub async fn handle_batch(&self, event: SqsEvent) -> (SqsBatchResponse, BatchCounts) {
        let mut counts = BatchCounts {
            received: event.records.len(),
            ..BatchCounts::default()
        };
        let mut response = SqsBatchResponse::default();
        // Read once per batch, only if something is pushed.
        let mut connections: Option<Vec<Connection>> = None;
        for (index, record) in event.records.iter().enumerate() {
            self.faults.before_record(index, event.records.len());
            let message_id = record.message_id.clone().unwrap_or_default();
            let span =
                info_span!("message", message_id = %message_id, change_id = tracing::field::Empty);
            let result = self
                .handle_record(record, &mut connections, &mut counts)
                .instrument(span.clone())
                .await;
            let Err(err) = result else { continue };
            let dead_lettered = match &err {
                RecordError::Malformed(reason) => {
                    counts.malformed += 1;
                    dead_letter_record(&self.dead_letters, record, &reason.to_string())
                        .instrument(span)
                        .await
                }
                other => {
                    counts.failed += 1;
                    span.in_scope(
                        || warn!(error = %other, "message failed; it returns to the queue"),
                    );
                    false
                }
            };
            if !dead_lettered {
                response.batch_item_failures.push(retry_later(message_id));
            }
        }
        (response, counts)
    }

    async fn handle_record(
        &self,
        record: &SqsMessage,
        connections: &mut Option<Vec<Connection>>,
        counts: &mut BatchCounts,
    ) -> Result<(), RecordError> {
        let event = CatalogEvent::from_message_body(record.body.as_deref().unwrap_or(""))?;
        tracing::Span::current().record("change_id", event.change_id());
        let lag_ms = (chrono::Utc::now() - event.changed_at())
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1000.0;
        let frame = match event {
            CatalogEvent::Product(change) => match self.product_frame(&change, counts).await? {
                Some(frame) => frame,
                None => return Ok(()),
            },
            // The thumbnailer has already pointed the product at the new photo.
            CatalogEvent::Photo(change) => {
                counts.photos += 1;
                ServerFrame::photo_changed(&change)
            }
        };
        counts.lag_ms.push(lag_ms);
        // Logged while it is pushed: the log's two writes would otherwise add to every
        // change's latency. If either fails the message returns; its redelivery is logged
        // and pushed again as a duplicate (clients and SSE readers drop versions they have).
        let frame_json = frame.to_json();
        let (logged, pushed) = tokio::join!(
            self.change_log.append(
                frame.type_name(),
                frame.product_id().unwrap_or_default(),
                &frame_json,
            ),
            self.push_to_subscribers(&frame, &frame_json, connections, counts)
        );
        logged?;
        pushed
    }

    /// Applies a product change; the frame to push, or `None` if it was stale.
    async fn product_frame(
        &self,
        change: &ProductChanged,
        counts: &mut BatchCounts,
    ) -> Result<Option<ServerFrame>, RecordError> {
        let product = match self.products.apply_change(change).await? {
            ApplyOutcome::Applied(product) => {
                counts.applied += 1;
                debug!(product_id = %change.product_id, version = change.version, "applied");
                product
            }
            ApplyOutcome::Duplicate(product) => {
                counts.duplicate += 1;
                info!(product_id = %change.product_id, version = change.version, "duplicate delivery; pushing the stored state again");
                product
            }
            ApplyOutcome::Stale { stored_version } => {
                counts.stale += 1;
                debug!(product_id = %change.product_id, version = change.version, stored_version, "older than stored; dropped");
                return Ok(None);
            }
        };
        Ok(Some(ServerFrame::product_changed(change, product)))
    }

    /// Pushes a frame to every connection that wants its product, concurrently.
    async fn push_to_subscribers(
        &self,
        frame: &ServerFrame,
        frame_json: &str,
        connections: &mut Option<Vec<Connection>>,
        counts: &mut BatchCounts,
    ) -> Result<(), RecordError> {
        let product_id = frame.product_id().unwrap_or_default();
        if connections.is_none() {
            *connections = Some(self.connections.all().await?);
        }
        let targets: Vec<&Connection> = connections
            .as_ref()
            .expect("loaded above")
            .iter()
            .filter(|c| wants(c.product_ids.as_ref(), product_id))
            .collect();
        let results: Vec<(String, Result<(), PushError>)> = stream::iter(targets)
            .map(|c| async {
                (
                    c.connection_id.clone(),
                    self.pusher.push(&c.connection_id, frame_json).await,
                )
            })
            .buffer_unordered(self.push_concurrency.max(1))
            .collect()
            .await;
        let attempted = results.len();
        let mut failed = 0;
        for (connection_id, result) in results {
            match result {
                Ok(()) => counts.pushes_sent += 1,
                Err(PushError::Gone) => {
                    counts.pushes_gone += 1;
                    info!(connection_id = %connection_id, "connection gone (410); removing its record");
                    self.connections.remove(&connection_id).await?;
                    if let Some(list) = connections.as_mut() {
                        list.retain(|c| c.connection_id != connection_id);
                    }
                }
                Err(err) => {
                    counts.pushes_failed += 1;
                    failed += 1;
                    warn!(connection_id = %connection_id, error = %err, "push failed");
                }
            }
        }
        if failed > 0 {
            return Err(RecordError::Push { failed, attempted });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
