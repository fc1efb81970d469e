//! Typed configuration read from environment variables at cold start.
//!
//! Every reader names the variable in its error, so a missing or out-of-range
//! value fails the cold start with a message that names what to fix.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// A configuration value that is missing or invalid.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable concerned.
    pub variable: String,
    /// Problem with the value, and the expected value.
    pub reason: String,
}

impl ConfigError {
    /// Creates an error about `variable`.
    pub fn new(variable: &str, reason: impl Into<String>) -> Self {
        Self { variable: variable.to_owned(), reason: reason.into() }
    }
}

/// A snapshot of environment variables to read configuration from.
///
/// Tests build one from a map so that they never touch the process
/// environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Takes a snapshot of the process environment.
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    /// Builds an environment from name and value pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    /// Returns the value of `name`, or `None` when it is unset or empty.
    pub fn optional(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Returns the value of `name`, failing when it is unset or empty.
    pub fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.optional(name).ok_or_else(|| ConfigError::new(name, "must be set"))
    }

    /// Parses `name`, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|error| ConfigError::new(name, format!("cannot parse {raw:?}: {error}"))),
        }
    }

    /// Parses `name` (or takes `default`) and checks that it lies in `min..=max`.
    pub fn parse_in_range<T>(&self, name: &str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let value = self.parse_or(name, default)?;
        if value < min || value > max {
            return Err(ConfigError::new(name, format!("{value} is outside the range {min} to {max}")));
        }
        Ok(value)
    }

    /// Reads a boolean flag: `true`, `false`, `1`, `0`, `yes` or `no`.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ConfigError::new(name, format!("{other:?} is not true or false"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_or_uses_default_when_unset() {
        let env = Env::from_pairs([]);
        assert_eq!(env.parse_or("LEVEL", 6u32).unwrap(), 6);
    }

    #[test]
    fn parse_in_range_rejects_out_of_range() {
        let env = Env::from_pairs([("LEVEL", "12")]);
        let error = env.parse_in_range("LEVEL", 6u32, 0, 9).unwrap_err();
        assert_eq!(error.variable, "LEVEL");
        assert!(error.to_string().contains("outside the range 0 to 9"), "{error}");
    }

    #[test]
    fn parse_or_names_variable_on_error() {
        let env = Env::from_pairs([("PART_SIZE_BYTES", "lots")]);
        let error = env.parse_or("PART_SIZE_BYTES", 1u64).unwrap_err();
        assert!(error.to_string().starts_with("invalid configuration: PART_SIZE_BYTES"), "{error}");
    }

    #[test]
    fn flag_accepts_common_spellings() {
        let cases = [("true", true), ("1", true), ("YES", true), ("false", false), ("0", false), ("no", false)];
        for (raw, expected) in cases {
            let env = Env::from_pairs([("DELETE_SOURCE", raw)]);
            assert_eq!(env.flag("DELETE_SOURCE", !expected).unwrap(), expected, "{raw}");
        }
        let env = Env::from_pairs([("DELETE_SOURCE", "maybe")]);
        assert!(env.flag("DELETE_SOURCE", false).is_err());
    }

    #[test]
    fn blank_value_counts_as_unset() {
        let env = Env::from_pairs([("ARCHIVE_BUCKET", "  ")]);
        assert!(env.optional("ARCHIVE_BUCKET").is_none());
        assert!(env.required("ARCHIVE_BUCKET").is_err());
    }
}
