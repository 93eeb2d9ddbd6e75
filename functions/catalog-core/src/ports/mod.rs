//! The ports: what the functions need from the outside world, as small traits, each with
//! the in-memory fake the unit tests use (`fake`, behind the `fakes` feature). The AWS
//! adapters that implement them are in [`crate::aws`].

pub mod change_log;
pub mod connections;
pub mod dead_letters;
pub mod jobs;
pub mod photos;
pub mod products;
pub mod publisher;
pub mod push;

pub use change_log::{shard_of, ChangeLog, LogEntry, LogMark, LogPosition};
pub use connections::{Connection, ConnectionStore};
pub use dead_letters::{DeadLetter, DeadLetters, Redelivery};
pub use jobs::{Claim, JobLog};
pub use photos::{PhotoBucket, PhotoJob, PhotoJobQueue};
pub use products::{CatalogReader, GeneratorStore, Page, PageKey, PhotoRecords, ProductStore};
pub use publisher::{ChangePublisher, PhotoChangePublisher};
pub use push::{PushError, Pusher};

/// A failed call to a downstream service (DynamoDB, SNS, SQS, S3), with the message the SDK gave.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    #[error("product {0} does not exist")]
    UnknownProduct(String),
    #[error("stored item is unreadable: {0}")]
    CorruptItem(String),
    #[error("{operation} failed: {message}")]
    Aws {
        operation: &'static str,
        message: String,
    },
    #[error(transparent)]
    CircuitOpen(#[from] crate::breaker::Rejected),
}

impl DownstreamError {
    /// Whether the downstream itself is unwell (what a circuit breaker counts), as
    /// opposed to a request it rightly refused.
    pub fn is_downstream_failure(&self) -> bool {
        matches!(self, DownstreamError::Aws { .. })
    }

    pub fn aws<E: std::error::Error>(operation: &'static str, err: E) -> Self {
        DownstreamError::Aws {
            operation,
            message: full_message(&err),
        }
    }
}

/// The SDK's Display shows only the outermost layer ("service error"); the cause chain says what went wrong.
pub fn full_message(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
