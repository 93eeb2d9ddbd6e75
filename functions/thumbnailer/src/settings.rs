//! Everything the thumbnailer reads from its environment, in one place.

use catalog_core::config::{ConfigError, Env};
use catalog_core::ports::photos;

#[derive(Clone, Debug)]
pub struct Settings {
    pub photos_bucket: String,
    pub products_table: String,
    pub photo_jobs_table: String,
    pub changes_topic_arn: String,
    pub dead_letter_queue_url: String,
    pub job_lease_seconds: i64,
    pub photo_url_ttl_seconds: u64,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            photos_bucket: env.required("PHOTOS_BUCKET")?,
            products_table: env.required("PRODUCTS_TABLE")?,
            photo_jobs_table: env.required("PHOTO_JOBS_TABLE")?,
            changes_topic_arn: env.required("CHANGES_TOPIC_ARN")?,
            dead_letter_queue_url: env.required("PHOTO_JOBS_DEAD_LETTER_QUEUE_URL")?,
            job_lease_seconds: env.parsed_or("JOB_LEASE_SECONDS", 60)?,
            photo_url_ttl_seconds: env
                .parsed_or("PHOTO_URL_TTL_SECONDS", photos::DEFAULT_URL_TTL_SECONDS)?,
        })
    }
}
