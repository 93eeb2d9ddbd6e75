//! Settings come from environment variables set by template.yaml; nothing is hard-coded.
//! Each function reads all of its settings in one place, its `Settings::read`, into one typed
//! struct; a missing or malformed variable stops the function at start with its name.

use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set (template.yaml sets it for every function)")]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Where settings are read from: the process environment, or given pairs in a test.
pub enum Env {
    Process,
    Given(HashMap<String, String>),
}

impl Env {
    pub fn given<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Env::Given(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Given(pairs) => pairs.get(name).cloned(),
        }
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    /// An optional, parsed setting with a default.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => {
                v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    value: v,
                    reason: e.to_string(),
                })
            }
            _ => Ok(default),
        }
    }
}

/// A function's settings: everything it reads from its environment, read in one place.
pub trait FromEnv: Sized {
    fn read(env: &Env) -> Result<Self, ConfigError>;

    fn from_env() -> Result<Self, ConfigError> {
        Self::read(&Env::Process)
    }
}

pub fn required(name: &'static str) -> Result<String, ConfigError> {
    Env::Process.required(name)
}

/// An optional, parsed setting with a default.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Env::Process.parsed_or(name, default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        let env = Env::given([("SIZE", "ten"), ("BLANK", " ")]);
        assert_eq!(env.required("NOPE"), Err(ConfigError::Missing("NOPE")));
        assert_eq!(env.required("BLANK"), Err(ConfigError::Missing("BLANK")));
        let bad = env.parsed_or("SIZE", 3usize).unwrap_err();
        assert!(bad.to_string().contains("SIZE=\"ten\" is invalid"), "{bad}");
        assert_eq!(env.parsed_or("UNSET", 3usize), Ok(3));
    }
}
