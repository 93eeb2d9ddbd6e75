//! The product-catalogue domain and the AWS adapters behind small traits.
//!
//! Pure logic (what a change is, how versions order, what a client asked for)
//! lives in the domain modules and is tested without AWS. `ports` holds the traits the
//! functions need from the outside world, each with its in-memory fake; `aws` holds
//! their DynamoDB, SNS, SQS, S3 and API Gateway management adapters.

pub mod auth;
pub mod aws;
pub mod breaker;
pub mod change;
pub mod config;
#[cfg(any(test, feature = "fakes"))]
pub mod event_fixtures;
#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod frames;
pub mod generate;
pub mod metrics;
pub mod ports;
pub mod presign;
pub mod product;
pub mod rate;
pub mod settings;
pub mod sqs_batch;
pub mod telemetry;
pub mod version;

pub use change::{CatalogEvent, ChangeError, ProductChanged, ProductPhotoChanged, StockAndPrice};
pub use product::Product;
pub use version::ApplyOutcome;
