//! Poison messages: what cannot ever be processed goes to a dead-letter queue with its reason, and the batch entry that returns a message to its queue.

use async_trait::async_trait;

use super::DownstreamError;

/// A message that can never be processed, as it came off the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// The FIFO group it was in; kept so a redrive puts it back where it was.
    pub group_id: Option<String>,
    pub reason: String,
}

#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), DownstreamError>;
}

/// Messages a batch returns to their queue, each to be received again after its delay
/// instead of after the queue's whole visibility timeout.
#[async_trait]
pub trait Redelivery: Send + Sync {
    /// `(receipt handle, delay)` of messages still in flight.
    async fn redeliver_after(
        &self,
        messages: &[(String, std::time::Duration)],
    ) -> Result<(), DownstreamError>;
}

/// The in-memory stand-in the functions' unit tests use.
#[cfg(any(test, feature = "fakes"))]
pub mod fake {
    use std::sync::Arc;

    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::ports::DownstreamError;

    /// Keeps dead letters in memory; `failing` makes sending them fail.
    #[derive(Clone, Default)]
    pub struct MemoryDeadLetters {
        pub letters: Arc<Mutex<Vec<DeadLetter>>>,
        pub failing: Arc<std::sync::atomic::AtomicBool>,
    }

    #[async_trait]
    impl DeadLetters for MemoryDeadLetters {
        async fn send(&self, letter: &DeadLetter) -> Result<(), DownstreamError> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(DownstreamError::Aws {
                    operation: "SQS SendMessage",
                    message: "injected outage".into(),
                });
            }
            self.letters.lock().unwrap().push(letter.clone());
            Ok(())
        }
    }

    /// Records each redelivery asked for.
    #[derive(Clone, Default)]
    pub struct RecordingRedelivery {
        pub asked: Arc<Mutex<Vec<(String, std::time::Duration)>>>,
    }

    #[async_trait]
    impl Redelivery for RecordingRedelivery {
        async fn redeliver_after(
            &self,
            messages: &[(String, std::time::Duration)],
        ) -> Result<(), DownstreamError> {
            self.asked.lock().unwrap().extend_from_slice(messages);
            Ok(())
        }
    }
}
