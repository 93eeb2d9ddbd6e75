//! Everything the consumer reads from its environment, in one place.

use catalog_core::aws::DownstreamSettings;
use catalog_core::config::{ConfigError, Env};
use catalog_core::ports::change_log;

#[derive(Clone, Debug)]
pub struct Settings {
    pub downstreams: DownstreamSettings,
    pub dead_letter_queue_url: String,
    pub change_log_table: String,
    pub change_log_retention_seconds: i64,
    pub change_log_shards: usize,
    pub push_concurrency: usize,
    pub group_concurrency: usize,
    pub connection_cache_ms: u64,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            downstreams: DownstreamSettings::read(env)?,
            dead_letter_queue_url: env.required("CHANGES_DEAD_LETTER_QUEUE_URL")?,
            change_log_table: env.required("CHANGE_LOG_TABLE")?,
            change_log_retention_seconds: env.parsed_or("CHANGE_LOG_RETENTION_SECONDS", 3600)?,
            change_log_shards: change_log::shards_of(env)?,
            push_concurrency: env.parsed_or("PUSH_CONCURRENCY", 16)?,
            group_concurrency: env.parsed_or("GROUP_CONCURRENCY", 10)?,
            connection_cache_ms: env.parsed_or("CONNECTION_CACHE_MS", 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: [(&str, &str); 5] = [
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
    ];

    #[test]
    fn reads_what_the_template_sets_and_names_what_is_missing_or_bad() {
        let settings = Settings::read(&Env::given(SET)).unwrap();
        assert_eq!(
            (settings.change_log_shards, settings.group_concurrency),
            (16, 10)
        );
        for (missing, _) in SET {
            let env = Env::given(SET.into_iter().filter(|(k, _)| *k != missing));
            assert_eq!(
                Settings::read(&env).unwrap_err(),
                ConfigError::Missing(missing)
            );
        }
        let bad = Env::given(SET.into_iter().chain([("PUSH_CONCURRENCY", "many")]));
        let err = Settings::read(&bad).unwrap_err().to_string();
        assert!(err.contains("PUSH_CONCURRENCY"), "{err}");
    }
}
