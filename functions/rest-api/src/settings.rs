//! Everything the REST API reads from its environment, in one place.

use std::sync::Arc;

use catalog_core::auth::TokenVerifier;
use catalog_core::aws::{clients, DynamoProducts, Guarded, S3Photos, SqsPhotoJobs};
use catalog_core::breaker::{BreakerConfig, CircuitBreaker};
use catalog_core::config::{ConfigError, Env};
use catalog_core::ports::photos;

use crate::{presign_cache_from, RestApi};

#[derive(Clone, Debug)]
pub struct Settings {
    pub products_table: String,
    pub photos_bucket: String,
    pub photo_jobs_queue_url: String,
    pub photo_url_ttl_seconds: u64,
    pub max_photo_bytes: usize,
    pub breaker: BreakerConfig,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            products_table: env.required("PRODUCTS_TABLE")?,
            photos_bucket: env.required("PHOTOS_BUCKET")?,
            photo_jobs_queue_url: env.required("PHOTO_JOBS_QUEUE_URL")?,
            photo_url_ttl_seconds: env
                .parsed_or("PHOTO_URL_TTL_SECONDS", photos::DEFAULT_URL_TTL_SECONDS)?,
            max_photo_bytes: env.parsed_or("MAX_PHOTO_BYTES", 4_000_000)?,
            breaker: BreakerConfig::read(env)?,
        })
    }
}

impl RestApi {
    /// The API over the deployed table, bucket and queue; also returns the table's breaker
    /// for the metrics. Open, the breaker answers 503 at once instead of letting every
    /// request wait out the retries.
    pub fn connect(
        sdk: &aws_config::SdkConfig,
        settings: Settings,
        verifier: TokenVerifier,
    ) -> (Self, Arc<CircuitBreaker>) {
        let breaker = Arc::new(CircuitBreaker::new("dynamodb", settings.breaker));
        let api = RestApi {
            products: Box::new(Guarded::new(
                DynamoProducts::new(aws_sdk_dynamodb::Client::new(sdk), settings.products_table),
                breaker.clone(),
            )),
            bucket: Box::new(S3Photos::new(
                clients::s3_client(sdk),
                settings.photos_bucket,
            )),
            jobs: Box::new(SqsPhotoJobs::new(
                aws_sdk_sqs::Client::new(sdk),
                settings.photo_jobs_queue_url,
            )),
            verifier,
            presigned: presign_cache_from(settings.photo_url_ttl_seconds),
            max_photo_bytes: settings.max_photo_bytes,
        };
        (api, breaker)
    }
}
