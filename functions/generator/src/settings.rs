//! Everything the generator reads from its environment, in one place.

use catalog_core::config::{ConfigError, Env};

#[derive(Clone, Debug)]
pub struct Settings {
    pub products_table: String,
    pub changes_topic_arn: String,
    pub products_per_run: usize,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }

    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            products_table: env.required("PRODUCTS_TABLE")?,
            changes_topic_arn: env.required("CHANGES_TOPIC_ARN")?,
            products_per_run: env.parsed_or("PRODUCTS_PER_RUN", 3)?,
        })
    }
}
