//! What each function reads from its environment, in one place beside the others, so they
//! can be checked against template.yaml at a glance. Every struct is read by [`FromEnv`]; a
//! missing or malformed variable stops the function at start with the variable's name.

use crate::auth::TokenVerifier;
use crate::breaker::BreakerConfig;
use crate::config::{ConfigError, Env, FromEnv};
use crate::ports::{change_log, photos};

/// Where the functions that push find the products and connections tables and the
/// management API (`crate::aws::Downstreams`).
#[derive(Clone, Debug)]
pub struct DownstreamSettings {
    pub products_table: String,
    pub connections_table: String,
    /// Shards of the connections table (`CONNECTION_SHARDS`); every function must agree.
    pub connection_shards: usize,
    pub management_endpoint: String,
    pub breaker: BreakerConfig,
}

impl FromEnv for DownstreamSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            products_table: env.required("PRODUCTS_TABLE")?,
            connections_table: env.required("CONNECTIONS_TABLE")?,
            connection_shards: env.parsed_or(
                "CONNECTION_SHARDS",
                crate::ports::connections::DEFAULT_CONNECTION_SHARDS,
            )?,
            management_endpoint: env.required("WS_MANAGEMENT_ENDPOINT")?,
            breaker: BreakerConfig::read(env)?,
        })
    }
}

/// The generator: where products are and where their changes go.
#[derive(Clone, Debug)]
pub struct GeneratorSettings {
    pub products_table: String,
    pub changes_topic_arn: String,
    pub products_per_run: usize,
}

impl FromEnv for GeneratorSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            products_table: env.required("PRODUCTS_TABLE")?,
            changes_topic_arn: env.required("CHANGES_TOPIC_ARN")?,
            products_per_run: env.parsed_or("PRODUCTS_PER_RUN", 3)?,
        })
    }
}

/// The consumer.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub downstreams: DownstreamSettings,
    pub dead_letter_queue_url: String,
    /// The changes queue itself: a retryable failure is made visible again sooner than its
    /// visibility timeout (ChangeMessageVisibility).
    pub queue_url: String,
    /// The first retry's delay; each further receive doubles it, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub change_log_table: String,
    pub change_log_retention_seconds: i64,
    pub change_log_shards: usize,
    pub push_concurrency: usize,
    pub group_concurrency: usize,
}

impl FromEnv for ConsumerSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            downstreams: DownstreamSettings::read(env)?,
            dead_letter_queue_url: env.required("CHANGES_DEAD_LETTER_QUEUE_URL")?,
            queue_url: env.required("CHANGES_QUEUE_URL")?,
            retry_base_ms: env.parsed_or("RETRY_BASE_MS", 1000)?,
            retry_max_ms: env.parsed_or("RETRY_MAX_MS", 5_000)?,
            change_log_table: env.required("CHANGE_LOG_TABLE")?,
            change_log_retention_seconds: env.parsed_or("CHANGE_LOG_RETENTION_SECONDS", 3600)?,
            change_log_shards: change_log::shards_of(env)?,
            push_concurrency: env.parsed_or("PUSH_CONCURRENCY", 16)?,
            group_concurrency: env.parsed_or("GROUP_CONCURRENCY", 10)?,
        })
    }
}

/// The WebSocket handler.
pub struct WsHandlerSettings {
    pub downstreams: DownstreamSettings,
    pub verifier: TokenVerifier,
    pub messages_per_second: f64,
    pub message_burst: u32,
    pub connection_ttl_seconds: i64,
    pub change_log_table: String,
    pub change_log_shards: usize,
    /// How old a live frame must be before a client counts it toward its resume position:
    /// longer than the consumer may take to push a change it has numbered (its timeout).
    pub resume_settle_ms: u64,
}

impl FromEnv for WsHandlerSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            downstreams: DownstreamSettings::read(env)?,
            verifier: TokenVerifier::read(env)?,
            messages_per_second: env.parsed_or("WS_MESSAGES_PER_SECOND", 10.0)?,
            message_burst: env.parsed_or("WS_MESSAGE_BURST", 20)?,
            connection_ttl_seconds: env.parsed_or("CONNECTION_TTL_SECONDS", 7200)?,
            change_log_table: env.required("CHANGE_LOG_TABLE")?,
            change_log_shards: change_log::shards_of(env)?,
            resume_settle_ms: env.parsed_or("RESUME_SETTLE_MS", 15_000)?,
        })
    }
}

/// The photo-jobs worker.
#[derive(Clone, Debug)]
pub struct ThumbnailerSettings {
    pub photos_bucket: String,
    pub products_table: String,
    pub photo_jobs_table: String,
    pub changes_topic_arn: String,
    pub dead_letter_queue_url: String,
    pub job_lease_seconds: i64,
    pub photo_url_ttl_seconds: u64,
}

impl FromEnv for ThumbnailerSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
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

/// The REST API.
#[derive(Clone, Debug)]
pub struct RestApiSettings {
    pub products_table: String,
    pub photos_bucket: String,
    pub photo_jobs_queue_url: String,
    pub photo_url_ttl_seconds: u64,
    pub max_photo_bytes: usize,
    pub breaker: BreakerConfig,
}

impl FromEnv for RestApiSettings {
    fn read(env: &Env) -> Result<Self, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const SET: [(&str, &str); 6] = [
        ("PRODUCTS_TABLE", "products"),
        ("CONNECTIONS_TABLE", "connections"),
        (
            "WS_MANAGEMENT_ENDPOINT",
            "http://127.0.0.1:4566/_aws/execute-api/a/live",
        ),
        (
            "CHANGES_DEAD_LETTER_QUEUE_URL",
            "http://127.0.0.1:4566/0/dlq",
        ),
        ("CHANGE_LOG_TABLE", "log"),
        ("CHANGES_QUEUE_URL", "http://127.0.0.1:4566/0/changes.fifo"),
    ];

    #[test]
    fn reads_what_the_template_sets_and_names_what_is_missing_or_bad() {
        let settings = ConsumerSettings::read(&Env::given(SET)).unwrap();
        assert_eq!(
            (settings.change_log_shards, settings.group_concurrency),
            (16, 10)
        );
        for (missing, _) in SET {
            let env = Env::given(SET.into_iter().filter(|(k, _)| *k != missing));
            assert_eq!(
                ConsumerSettings::read(&env).unwrap_err(),
                ConfigError::Missing(missing)
            );
        }
        let bad = Env::given(SET.into_iter().chain([("PUSH_CONCURRENCY", "many")]));
        let err = ConsumerSettings::read(&bad).unwrap_err().to_string();
        assert!(err.contains("PUSH_CONCURRENCY"), "{err}");
    }
}
