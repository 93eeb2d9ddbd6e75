//! The product-catalogue domain and the AWS adapters behind small traits.
//!
//! Pure logic (what a change is, how versions order, what a client asked for)
//! lives in the domain modules and is tested without AWS. The `aws` module holds
//! the DynamoDB, SNS and API Gateway management adapters used by the functions.

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
pub mod presign;
pub mod product;
pub mod rate;
pub mod telemetry;
pub mod version;

pub use change::{CatalogEvent, ChangeError, ProductChanged, ProductPhotoChanged, StockAndPrice};
pub use product::Product;
pub use version::ApplyOutcome;
