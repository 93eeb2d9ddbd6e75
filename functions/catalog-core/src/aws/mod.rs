//! AWS adapters. Each sits behind a small trait so handler logic is tested with fakes.

pub mod change_log;
pub mod clients;
pub mod connections;
pub mod dead_letters;
pub mod downstreams;
pub mod guarded;
pub mod item;
pub mod jobs;
pub mod photos;
pub mod products;
pub mod publisher;
pub mod push;

pub use change_log::{shard_of, ChangeLog, DynamoChangeLog, LogEntry, LogPosition};
pub use connections::{Connection, ConnectionStore, DynamoConnections};
pub use dead_letters::{dead_letter_record, retry_later, DeadLetter, DeadLetters, SqsDeadLetters};
pub use downstreams::Downstreams;
pub use guarded::Guarded;
pub use jobs::{Claim, DynamoJobLog, JobLog};
pub use photos::{PhotoBucket, PhotoJob, PhotoJobQueue, S3Photos, SqsPhotoJobs};
pub use products::{
    CatalogReader, DynamoProducts, GeneratorStore, Page, PageKey, PhotoRecords, ProductStore,
};
pub use publisher::{ChangePublisher, PhotoChangePublisher, SnsPublisher};
pub use push::{ManagementApiPusher, PushError, Pusher};

/// A failed call to a downstream service, with the message the SDK gave.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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

impl StoreError {
    /// Whether the downstream itself is unwell (what a circuit breaker counts), as
    /// opposed to a request it rightly refused.
    pub fn is_downstream_failure(&self) -> bool {
        matches!(self, StoreError::Aws { .. })
    }

    pub fn aws<E: std::error::Error>(operation: &'static str, err: E) -> Self {
        StoreError::Aws {
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
