//! The SQS batch loop the queue-fed functions share: records one after another, each in its
//! own span; a poison record (one that can never be processed) goes to the dead-letter queue
//! with its reason; any other failure returns the record to its queue as a batch item failure.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsMessage};
use tracing::{warn, Instrument, Span};

use crate::ports::{DeadLetter, DeadLetters};

/// A record's failure, and whether retrying it could ever help.
pub trait RecordFailure: std::fmt::Display {
    /// True when the record can never be processed (unreadable, invalid): it is dead-lettered.
    fn is_poison(&self) -> bool;
}

/// What a function does with one record.
// A native async fn, not #[async_trait]: its future's Send-ness is then checked where the
// handler is known, instead of being demanded up front (the consumer's pushes borrow across
// closures that a boxed `Send` future cannot express).
#[allow(async_fn_in_trait)]
pub trait RecordHandler {
    type Counts;
    type Failure: RecordFailure;

    /// The record's span; the handler may record more fields into it while it runs.
    fn span(&self, message_id: &str) -> Span;
    async fn handle(
        &self,
        record: &SqsMessage,
        counts: &mut Self::Counts,
    ) -> Result<(), Self::Failure>;
    /// Called after each record, whatever became of it.
    fn after_record(&self) {}
}

/// Whether one failure holds back the records after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Each record stands alone (a standard queue).
    Independent,
    /// A FIFO message group: once a record fails, the rest return to the queue unprocessed,
    /// so none of them is applied before it.
    Kept,
}

/// What the loop did besides the handler's own counts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Message ids to return to the queue (`batchItemFailures`).
    pub retry: Vec<String>,
    /// Poison records, whether or not the dead-letter queue took them.
    pub poison: usize,
    pub dead_lettered: usize,
    /// Records that failed and may succeed later.
    pub failed: usize,
}

impl Settled {
    pub fn batch_item_failures(self) -> Vec<BatchItemFailure> {
        self.retry.into_iter().map(retry_later).collect()
    }
}

/// Runs `handler` over `records` as [`Order`] says.
pub async fn process<'a, H: RecordHandler + ?Sized>(
    handler: &H,
    dead_letters: &(impl DeadLetters + ?Sized),
    records: impl IntoIterator<Item = &'a SqsMessage>,
    order: Order,
    counts: &mut H::Counts,
) -> Settled {
    let mut settled = Settled::default();
    let mut held_back = false;
    for record in records {
        let message_id = record.message_id.clone().unwrap_or_default();
        if held_back {
            settled.retry.push(message_id);
            continue;
        }
        let span = handler.span(&message_id);
        let result = handler
            .handle(record, counts)
            .instrument(span.clone())
            .await;
        if let Err(failure) = result {
            let returns = if failure.is_poison() {
                settled.poison += 1;
                let moved = dead_letter_record(dead_letters, record, &failure.to_string())
                    .instrument(span)
                    .await;
                settled.dead_lettered += usize::from(moved);
                !moved
            } else {
                settled.failed += 1;
                span.in_scope(|| warn!(error = %failure, "failed; it returns to the queue"));
                true
            };
            if returns {
                settled.retry.push(message_id);
                held_back = order == Order::Kept;
            }
        }
        handler.after_record();
    }
    settled
}

/// Moves a record that can never be processed to the dead-letter queue and logs why;
/// false if that failed, and the record must return to its queue instead.
pub async fn dead_letter_record<D: DeadLetters + ?Sized>(
    dead_letters: &D,
    record: &SqsMessage,
    reason: &str,
) -> bool {
    let letter = DeadLetter {
        message_id: record.message_id.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        group_id: record.attributes.get("MessageGroupId").cloned(),
        reason: reason.to_owned(),
    };
    match dead_letters.send(&letter).await {
        Ok(()) => {
            tracing::warn!(
                reason,
                body = crate::telemetry::truncated(&letter.body, 300),
                "moved to the dead-letter queue"
            );
            true
        }
        Err(e) => {
            tracing::warn!(reason, error = %e, "could not be dead-lettered; it returns to the queue");
            false
        }
    }
}

/// How long a record that failed for a reason that may pass waits before its next receive:
/// `base` doubled for each receive before this one, at most `max`. The queue's own visibility
/// timeout stays long, for an invocation that dies without answering.
pub fn retry_delay(
    record: &SqsMessage,
    base: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let receives: u32 = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1);
    base.saturating_mul(1 << receives.saturating_sub(1).min(16))
        .min(max)
}

/// The `batchItemFailures` entry that returns one message to its queue.
pub fn retry_later(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemoryDeadLetters;

    /// Bodies say what becomes of them: "ok", "poison" or "later".
    struct ByBody;

    #[derive(Debug)]
    struct Why(&'static str);

    impl std::fmt::Display for Why {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl RecordFailure for Why {
        fn is_poison(&self) -> bool {
            self.0 == "poison"
        }
    }

    impl RecordHandler for ByBody {
        type Counts = Vec<String>;
        type Failure = Why;

        fn span(&self, message_id: &str) -> Span {
            tracing::info_span!("record", message_id)
        }

        async fn handle(&self, record: &SqsMessage, seen: &mut Vec<String>) -> Result<(), Why> {
            let body = record.body.clone().unwrap_or_default();
            seen.push(body.clone());
            match body.as_str() {
                "poison" => Err(Why("poison")),
                "later" => Err(Why("later")),
                _ => Ok(()),
            }
        }
    }

    fn records(bodies: &[&str]) -> Vec<SqsMessage> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m-{i}"));
                m.body = Some(body.to_string());
                m
            })
            .collect()
    }

    #[test]
    fn a_retry_waits_longer_with_each_receive_up_to_the_limit() {
        use std::time::Duration;
        let received = |count: &str| {
            let mut m = SqsMessage::default();
            m.attributes
                .insert("ApproximateReceiveCount".to_owned(), count.to_owned());
            m
        };
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<u64> = ["1", "2", "3", "4", "40"]
            .iter()
            .map(|c| retry_delay(&received(c), base, max).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(retry_delay(&SqsMessage::default(), base, max), base);
    }

    #[tokio::test]
    async fn poison_is_dead_lettered_and_other_failures_return_to_the_queue() {
        let dead = MemoryDeadLetters::default();
        let batch = records(&["ok", "poison", "later", "ok"]);
        let mut seen = Vec::new();
        let settled = process(&ByBody, &dead, &batch, Order::Independent, &mut seen).await;
        assert_eq!(seen.len(), 4, "independent records all run");
        assert_eq!(settled.retry, ["m-2"]);
        assert_eq!(
            (settled.poison, settled.dead_lettered, settled.failed),
            (1, 1, 1)
        );
        let letters = dead.letters.lock().unwrap().clone();
        assert_eq!(
            (letters[0].message_id.as_str(), letters[0].reason.as_str()),
            ("m-1", "poison")
        );
    }

    #[tokio::test]
    async fn in_a_kept_order_a_failure_holds_back_the_rest_and_a_refused_dead_letter_returns() {
        let dead = MemoryDeadLetters::default();
        dead.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let batch = records(&["ok", "poison", "ok", "ok"]);
        let mut seen = Vec::new();
        let settled = process(&ByBody, &dead, &batch, Order::Kept, &mut seen).await;
        assert_eq!(seen, ["ok", "poison"], "nothing after the failure runs");
        assert_eq!(settled.retry, ["m-1", "m-2", "m-3"]);
        assert_eq!((settled.poison, settled.dead_lettered), (1, 0));
    }
}
