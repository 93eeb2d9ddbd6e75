//! The AWS adapters of the ports in [`crate::ports`]: DynamoDB, SNS, SQS, S3 and the API
//! Gateway management API, plus the SDK clients and the circuit-breaker wrapper.

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

pub use change_log::{DynamoChangeLog, ENTRIES_PER_PARTITION};
pub use connections::DynamoConnections;
pub use dead_letters::{SqsDeadLetters, SqsRedelivery};
pub use downstreams::Downstreams;
pub use guarded::Guarded;
pub use jobs::DynamoJobLog;
pub use photos::{S3Photos, SqsPhotoJobs};
pub use products::DynamoProducts;
pub use publisher::SnsPublisher;
pub use push::ManagementApiPusher;
