//! Applies `ProductChanged` events from SQS to the products table and pushes the
//! new state to every subscribed WebSocket client; `ProductPhotoChanged` events
//! (already recorded by the thumbnailer) are pushed as they are.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use catalog_core::frames::{wants, ServerFrame};
use catalog_core::ports::{
    ChangeLog, Connection, ConnectionStore, DeadLetters, DownstreamError, ProductStore, PushError,
    Pusher, Redelivery,
};
use catalog_core::sqs_batch::{self, Order, RecordFailure, RecordHandler};
use catalog_core::{ApplyOutcome, CatalogEvent, ChangeError, ProductChanged};
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn};

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
    /// 410s from connections whose `$connect` may not have returned yet: skipped, kept.
    pub pushes_not_open: usize,
    /// Now minus each change's `changedAt`, for every change applied or re-pushed.
    pub lag_ms: Vec<f64>,
}

impl BatchCounts {
    pub fn merge(&mut self, other: BatchCounts) {
        self.received += other.received;
        self.applied += other.applied;
        self.duplicate += other.duplicate;
        self.stale += other.stale;
        self.photos += other.photos;
        self.malformed += other.malformed;
        self.failed += other.failed;
        self.pushes_sent += other.pushes_sent;
        self.pushes_gone += other.pushes_gone;
        self.pushes_failed += other.pushes_failed;
        self.pushes_not_open += other.pushes_not_open;
        self.lag_ms.extend(other.lag_ms);
    }

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
            .count("PushesNotOpen", self.pushes_not_open)
            .milliseconds("EndToEndLagMs", &self.lag_ms);
    }
}

#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Malformed(#[from] ChangeError),
    #[error(transparent)]
    Store(#[from] DownstreamError),
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
    /// How many PostToConnection calls run at once, per record.
    pub push_concurrency: usize,
    /// How many message groups (products) of a batch are handled at once.
    pub group_concurrency: usize,
    /// The connection list as this warm container last read it, by shard.
    pub connection_view: ConnectionView,
    /// Returns failed records to the queue after a short, growing delay.
    pub redelivery: Box<dyn Redelivery>,
    /// The first retry's delay and the longest (`sqs_batch::retry_delay`).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Test-only failures; inert unless built with the `fault-injection` feature.
    pub faults: faults::Faults,
}

/// How long after `$connect` a 410 may only mean the connection is not open yet: API Gateway
/// answers 410 until `$connect` returns (the WebSocket function's timeout bounds that).
pub const CONNECT_GRACE_MS: i64 = 30_000;

/// The connection list as this warm container last read it, shard by shard.
///
/// Every connect and subscribe raises its shard's revision after writing its record. Before a
/// change is pushed, [`ConnectionView::since`] reads the revisions (one strongly consistent
/// BatchGetItem) *after* the change was applied and numbered in the change log, and re-reads
/// only the shards that moved. So a subscription either is in the list the change is pushed
/// to, or was written after the change was applied and numbered: then the snapshot or the
/// log position the client received after subscribing already holds it. Neither side waits
/// for the other, and no read grows with the table per batch (docs/design.md, "Convergence").
#[derive(Default)]
pub struct ConnectionView {
    state: tokio::sync::Mutex<ViewState>,
}

#[derive(Default)]
struct ViewState {
    /// When the last read of the revisions started.
    read_started: Option<Instant>,
    revisions: Vec<u64>,
    /// Each shard's connections as last read; `None` until read once.
    shards: Vec<Option<Vec<Connection>>>,
    list: Arc<Vec<Connection>>,
}

impl ConnectionView {
    /// The connections as of a revisions read that started at or after `since`.
    pub async fn since(
        &self,
        store: &impl ConnectionStore,
        since: Instant,
    ) -> Result<Arc<Vec<Connection>>, DownstreamError> {
        let mut state = self.state.lock().await;
        if state.read_started.is_some_and(|started| started >= since) {
            return Ok(state.list.clone());
        }
        let started = Instant::now();
        let revisions = store.revisions().await?;
        if state.shards.len() != revisions.len() {
            state.shards = vec![None; revisions.len()];
            state.revisions = vec![0; revisions.len()];
        }
        let moved: Vec<usize> = (0..revisions.len())
            .filter(|&s| state.shards[s].is_none() || state.revisions[s] != revisions[s])
            .collect();
        let read = futures::future::try_join_all(moved.iter().map(|&s| store.shard(s))).await?;
        for (shard, connections) in moved.iter().zip(read) {
            state.shards[*shard] = Some(connections);
            state.revisions[*shard] = revisions[*shard];
        }
        if !moved.is_empty() {
            state.list = Arc::new(state.shards.iter().flatten().flatten().cloned().collect());
        }
        state.read_started = Some(started);
        Ok(state.list.clone())
    }

    /// Drops a connection that answered 410 from the list.
    async fn forget(&self, connection_id: &str) {
        let mut state = self.state.lock().await;
        if !state.list.iter().any(|c| c.connection_id == connection_id) {
            return;
        }
        for shard in state.shards.iter_mut().flatten() {
            shard.retain(|c| c.connection_id != connection_id);
        }
        state.list = Arc::new(
            state
                .list
                .iter()
                .filter(|c| c.connection_id != connection_id)
                .cloned()
                .collect(),
        );
    }
}

/// The batch's records split by FIFO message group (one product each), in batch order
/// within a group. A record without a group (a standard queue) is a group of its own.
fn message_groups(records: &[SqsMessage]) -> Vec<Vec<&SqsMessage>> {
    let mut groups: Vec<Vec<&SqsMessage>> = Vec::new();
    let mut index_of: HashMap<&str, usize> = HashMap::new();
    for record in records {
        match record.attributes.get("MessageGroupId") {
            Some(group) => match index_of.get(group.as_str()) {
                Some(&g) => groups[g].push(record),
                None => {
                    index_of.insert(group.as_str(), groups.len());
                    groups.push(vec![record]);
                }
            },
            None => groups.push(vec![record]),
        }
    }
    groups
}

impl<P: ProductStore, C: ConnectionStore, U: Pusher, D: DeadLetters, L: ChangeLog>
    Consumer<P, C, U, D, L>
{
    /// Handles one SQS batch. Message groups (products) run concurrently; within a group
    /// records run in order, and once one fails the rest of its group is returned
    /// unprocessed, so a product's changes are never applied out of order.
    /// A poison message (undeserializable, unknown type, impossible values) goes straight
    /// to the dead-letter queue with its reason. Any other failure is reported on its own
    /// (`ReportBatchItemFailures`), so only those messages return to the queue; after
    /// maxReceiveCount the queue's redrive policy moves them to the dead-letter queue too.
    pub async fn handle_batch(&self, event: SqsEvent) -> (SqsBatchResponse, BatchCounts) {
        let batch = Batch {
            started: Instant::now(),
            gone: Default::default(),
            handled: Default::default(),
            completed: AtomicUsize::new(0),
            len: event.records.len(),
        };
        let groups = message_groups(&event.records);
        let results: Vec<(Vec<String>, BatchCounts)> = stream::iter(groups.iter().cloned())
            .map(|group| self.handle_group(group, &batch))
            .buffer_unordered(self.group_concurrency.max(1))
            .collect()
            .await;
        let mut counts = BatchCounts {
            received: event.records.len(),
            ..BatchCounts::default()
        };
        let mut failed: HashSet<String> = HashSet::new();
        for (failed_ids, group_counts) in results {
            counts.merge(group_counts);
            failed.extend(failed_ids);
        }
        let coalesced_failed = self.push_batched(&batch, &mut counts).await;
        let returned_before = failed.len();
        failed.extend(coalesced_failed);
        let retry = returned_in_group_order(&event.records, &groups, &failed);
        counts.failed += retry.len().saturating_sub(returned_before);
        self.redeliver_soon(&event.records, &retry).await;
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = retry.into_iter().map(sqs_batch::retry_later).collect();
        (response, counts)
    }

    /// Makes the returned records visible again after `sqs_batch::retry_delay` instead of
    /// the queue's visibility timeout (kept long for invocations that die without answering).
    async fn redeliver_soon(&self, records: &[SqsMessage], returned: &[String]) {
        let delays: Vec<(String, Duration)> = records
            .iter()
            .filter(|r| {
                r.message_id
                    .as_ref()
                    .is_some_and(|id| returned.contains(id))
            })
            .filter_map(|r| {
                let delay = sqs_batch::retry_delay(r, self.retry_base, self.retry_max);
                r.receipt_handle.clone().map(|receipt| (receipt, delay))
            })
            .collect();
        if delays.is_empty() {
            return;
        }
        if let Err(err) = self.redelivery.redeliver_after(&delays).await {
            warn!(error = %err, "could not shorten the returned records' visibility; they return after the queue's timeout");
        }
    }

    /// Sends each batched connection one `batch` frame with the batch's frames it wants.
    /// Returns the message ids of the records whose frame did not reach a connection.
    async fn push_batched(&self, batch: &Batch, counts: &mut BatchCounts) -> Vec<String> {
        let handled = std::mem::take(&mut *batch.handled.lock().expect("handled frames"));
        if handled.is_empty() {
            return Vec::new();
        }
        let every_record = || handled.iter().map(|h| h.message_id.clone()).collect();
        // Every record read the list after it was numbered; the newest read serves them all.
        let connections = match self
            .connection_view
            .since(&self.connections, batch.started)
            .await
        {
            Ok(connections) => connections,
            Err(err) => {
                warn!(error = %err, "connection list unreadable; the batch's changes return to the queue");
                return every_record();
            }
        };
        let jobs: Vec<(&Connection, String, Vec<&HandledFrame>)> = {
            let gone = batch.gone.lock().expect("gone set");
            connections
                .iter()
                .filter(|c| c.batched && !gone.contains(&c.connection_id))
                .filter_map(|c| {
                    let frames: Vec<&HandledFrame> = handled
                        .iter()
                        .filter(|h| wants(c.product_ids.as_ref(), &h.product_id))
                        .collect();
                    (!frames.is_empty()).then(|| {
                        let json = ServerFrame::batch_json(frames.iter().map(|h| h.json.as_str()));
                        (c, json, frames)
                    })
                })
                .collect()
        };
        let sends: Vec<(&Connection, &str)> = jobs
            .iter()
            .map(|(c, json, _)| (*c, json.as_str()))
            .collect();
        match self.push_each(&sends, batch, counts).await {
            Ok(failed) => {
                let ids: HashSet<&str> = failed
                    .into_iter()
                    .flat_map(|i| jobs[i].2.iter().map(|h| h.message_id.as_str()))
                    .collect();
                ids.into_iter().map(str::to_owned).collect()
            }
            Err(err) => {
                warn!(error = %err, "connection store failed while pushing batches; the batch's changes return to the queue");
                every_record()
            }
        }
    }

    /// One message group in order: the ids to return to the queue, and what happened.
    async fn handle_group(
        &self,
        group: Vec<&SqsMessage>,
        batch: &Batch,
    ) -> (Vec<String>, BatchCounts) {
        let mut counts = BatchCounts::default();
        let records = GroupRecords {
            consumer: self,
            batch,
        };
        let settled = sqs_batch::process(
            &records,
            &self.dead_letters,
            group,
            Order::Kept,
            &mut counts,
        )
        .await;
        counts.malformed += settled.poison;
        counts.failed += settled.failed;
        (settled.retry, counts)
    }

    async fn handle_record(
        &self,
        record: &SqsMessage,
        batch: &Batch,
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
        let product_id = frame.product_id().unwrap_or_default().to_owned();
        let mark = self.change_log.reserve(&product_id).await?;
        let numbered = Instant::now();
        let frame = frame.logged_at(mark);
        let frame_json = frame.to_json();
        // The entry is written while the change is pushed: a second write would otherwise add
        // to every change's latency. If either fails the message returns; its redelivery is
        // logged and pushed again as a duplicate (clients drop versions they have).
        let (logged, pushed) = tokio::join!(
            self.change_log
                .write(mark, frame.type_name(), &product_id, &frame_json),
            self.push_to_subscribers(&product_id, &frame_json, numbered, batch, counts)
        );
        logged?;
        pushed?;
        batch
            .handled
            .lock()
            .expect("handled frames")
            .push(HandledFrame {
                message_id: record.message_id.clone().unwrap_or_default(),
                product_id,
                json: frame_json,
            });
        Ok(())
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

    /// Pushes a frame to every connection that wants its product, one frame per change,
    /// concurrently; batched connections get it at the end of the batch (`push_batched`).
    /// The connection list is read after the change was numbered (`numbered`).
    async fn push_to_subscribers(
        &self,
        product_id: &str,
        frame_json: &str,
        numbered: Instant,
        batch: &Batch,
        counts: &mut BatchCounts,
    ) -> Result<(), RecordError> {
        let connections = self
            .connection_view
            .since(&self.connections, numbered)
            .await?;
        let sends: Vec<(&Connection, &str)> = {
            let gone = batch.gone.lock().expect("gone set");
            connections
                .iter()
                .filter(|c| !c.batched && wants(c.product_ids.as_ref(), product_id))
                .filter(|c| !gone.contains(&c.connection_id))
                .map(|c| (c, frame_json))
                .collect()
        };
        let failed = self.push_each(&sends, batch, counts).await?.len();
        if failed > 0 {
            return Err(RecordError::Push {
                failed,
                attempted: sends.len(),
            });
        }
        Ok(())
    }

    /// Pushes each payload to its connection, `push_concurrency` at a time. A connection that
    /// answers 410 is removed and not pushed to again in this batch, unless it is young enough
    /// that its `$connect` may not have returned: then it is only skipped for this batch.
    /// Returns the indices of the sends that failed otherwise.
    async fn push_each(
        &self,
        sends: &[(&Connection, &str)],
        batch: &Batch,
        counts: &mut BatchCounts,
    ) -> Result<Vec<usize>, DownstreamError> {
        let results: Vec<(usize, Result<(), PushError>)> = stream::iter(sends.iter().enumerate())
            .map(|(i, (connection, payload))| async move {
                (
                    i,
                    self.pusher.push(&connection.connection_id, payload).await,
                )
            })
            .buffer_unordered(self.push_concurrency.max(1))
            .collect()
            .await;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut failed = Vec::new();
        for (i, result) in results {
            let connection = sends[i].0;
            let connection_id = connection.connection_id.as_str();
            match result {
                Ok(()) => counts.pushes_sent += 1,
                Err(PushError::Gone) if now_ms - connection.connected_at_ms < CONNECT_GRACE_MS => {
                    counts.pushes_not_open += 1;
                    debug!(connection_id = %connection_id, "410 from a connection still opening; skipped");
                    batch
                        .gone
                        .lock()
                        .expect("gone set")
                        .insert(connection_id.to_owned());
                }
                Err(PushError::Gone) => {
                    counts.pushes_gone += 1;
                    info!(connection_id = %connection_id, "connection gone (410); removing its record");
                    self.connections.remove(connection_id).await?;
                    self.connection_view.forget(connection_id).await;
                    batch
                        .gone
                        .lock()
                        .expect("gone set")
                        .insert(connection_id.to_owned());
                }
                Err(err) => {
                    counts.pushes_failed += 1;
                    failed.push(i);
                    warn!(connection_id = %connection_id, error = %err, "push failed");
                }
            }
        }
        Ok(failed)
    }
}

/// The ids to return to the queue: each failed record and, because a FIFO group must stay in
/// order, every record after it in its message group. In batch order.
fn returned_in_group_order(
    records: &[SqsMessage],
    groups: &[Vec<&SqsMessage>],
    failed: &HashSet<String>,
) -> Vec<String> {
    let mut returned = HashSet::new();
    for group in groups {
        let ids = group
            .iter()
            .map(|r| r.message_id.clone().unwrap_or_default());
        let from_first_failure = ids.skip_while(|id| !failed.contains(id));
        returned.extend(from_first_failure);
    }
    records
        .iter()
        .filter_map(|r| r.message_id.clone())
        .filter(|id| returned.contains(id))
        .collect()
}

/// A message group's records as the shared SQS batch loop sees them.
struct GroupRecords<'a, P, C, U, D, L> {
    consumer: &'a Consumer<P, C, U, D, L>,
    batch: &'a Batch,
}

impl<P: ProductStore, C: ConnectionStore, U: Pusher, D: DeadLetters, L: ChangeLog> RecordHandler
    for GroupRecords<'_, P, C, U, D, L>
{
    type Counts = BatchCounts;
    type Failure = RecordError;

    fn span(&self, message_id: &str) -> tracing::Span {
        info_span!("message", message_id = %message_id, change_id = tracing::field::Empty)
    }

    async fn handle(
        &self,
        record: &SqsMessage,
        counts: &mut BatchCounts,
    ) -> Result<(), RecordError> {
        self.consumer
            .handle_record(record, self.batch, counts)
            .await
    }

    fn after_record(&self) {
        let completed = self.batch.completed.fetch_add(1, Ordering::SeqCst) + 1;
        self.consumer.faults.after_record(completed, self.batch.len);
    }
}

impl RecordFailure for RecordError {
    fn is_poison(&self) -> bool {
        matches!(self, RecordError::Malformed(_))
    }
}

/// A record's frame once it was applied, logged and pushed to the per-change connections.
struct HandledFrame {
    message_id: String,
    product_id: String,
    json: String,
}

/// What the records of one batch share while its groups run.
struct Batch {
    started: Instant,
    /// Frames handled so far, for the batched connections' one frame at the end.
    handled: std::sync::Mutex<Vec<HandledFrame>>,
    /// Connections that answered 410 during this batch: not pushed to again.
    gone: std::sync::Mutex<HashSet<String>>,
    /// Records finished so far (for the fault hook).
    completed: AtomicUsize,
    len: usize,
}

#[cfg(test)]
mod tests;
