//! Everything the WebSocket handler reads from its environment, in one place.

use catalog_core::auth::TokenVerifier;
use catalog_core::aws::DownstreamSettings;
use catalog_core::config::{ConfigError, Env};

pub struct Settings {
    pub downstreams: DownstreamSettings,
    pub verifier: TokenVerifier,
    pub messages_per_second: f64,
    pub message_burst: u32,
    pub connection_ttl_seconds: i64,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            downstreams: DownstreamSettings::read(env)?,
            verifier: TokenVerifier::read(env)?,
            messages_per_second: env.parsed_or("WS_MESSAGES_PER_SECOND", 10.0)?,
            message_burst: env.parsed_or("WS_MESSAGE_BURST", 20)?,
            connection_ttl_seconds: env.parsed_or("CONNECTION_TTL_SECONDS", 7200)?,
        })
    }
}
