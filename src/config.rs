//! Typed configuration from the environment, validated once at start.
//!
//! Every variable is documented here and in `.env.sample`. A bad or missing value fails start-up
//! with a message naming the variable; all problems are reported at once. Secrets are secret types.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Everything samgate needs to run, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL connection string (may hold a password, hence secret).
    pub database_url: SecretString,
    /// `SAMGATE_LISTEN`: address to bind, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `SAMGATE_PUBLIC_URL`: the URL people and Microsoft reach samgate at (redirect URI base).
    pub public_url: Url,
    /// `SAMGATE_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `SAMGATE_MAX_BODY_BYTES`: largest accepted request body on pages and the management API.
    pub max_body_bytes: usize,
    /// `SAMGATE_REQUEST_TIMEOUT_SECS`: deadline for page and management requests.
    pub request_timeout: Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shipping.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected `text` or `json`, got `{other}`")),
        }
    }
}

/// Start-up refused: one line per missing or malformed variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// Each problem names its variable first.
    pub problems: Vec<String>,
}

/// Reads variables through a lookup function and collects every problem instead of stopping at the
/// first one.
pub struct EnvReader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl<'a> EnvReader<'a> {
    /// A reader over `lookup` (the process environment in production, a map in tests).
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be present; `hint` says what a good value looks like.
    pub fn required<T: FromStr>(&mut self, name: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => {
                self.problems.push(format!("{name} is not set ({hint})"));
                None
            }
            Some(value) => self.parse(name, &value, hint),
        }
    }

    /// A secret that must be present; its value never appears in a message.
    pub fn required_secret(&mut self, name: &str, hint: &str) -> Option<SecretString> {
        match self.raw(name) {
            None => {
                self.problems.push(format!("{name} is not set ({hint})"));
                None
            }
            Some(value) => Some(SecretString::from(value)),
        }
    }

    /// An optional secret.
    pub fn optional_secret(&mut self, name: &str) -> Option<SecretString> {
        self.raw(name).map(SecretString::from)
    }

    /// A variable with a default.
    pub fn optional<T: FromStr>(&mut self, name: &str, default: T, hint: &str) -> T
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(name) {
            None => default,
            Some(value) => self.parse(name, &value, hint).unwrap_or(default),
        }
    }

    /// An optional variable without a default.
    pub fn maybe<T: FromStr>(&mut self, name: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.raw(name)?;
        self.parse(name, &value, hint)
    }

    fn parse<T: FromStr>(&mut self, name: &str, value: &str, hint: &str) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match value.trim().parse::<T>() {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                // Parse errors of secrets are never built from their value; these are plain settings.
                self.problems
                    .push(format!("{name} is malformed: {err} ({hint})"));
                None
            }
        }
    }

    /// Records a problem found while combining values.
    pub fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// `Ok(())` when nothing was wrong.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment (after an optional `.env`).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; `serve` uses the environment, tests use maps.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let database_url = env.required_secret(
            "DATABASE_URL",
            "a PostgreSQL URL such as postgres://samgate:…@db.internal/samgate",
        );
        let listen = env.optional(
            "SAMGATE_LISTEN",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "an address and port such as 0.0.0.0:8080",
        );
        let public_url: Option<Url> = env.required(
            "SAMGATE_PUBLIC_URL",
            "the external URL of samgate such as https://samgate.example.com",
        );
        if let Some(url) = &public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            env.problem("SAMGATE_PUBLIC_URL must be an http or https URL".into());
        }
        let log_format = env.optional("SAMGATE_LOG_FORMAT", LogFormat::Text, "text or json");
        let max_body_bytes = env.optional(
            "SAMGATE_MAX_BODY_BYTES",
            64 * 1024,
            "a number of bytes such as 65536",
        );
        let request_timeout = Duration::from_secs(env.optional(
            "SAMGATE_REQUEST_TIMEOUT_SECS",
            30,
            "whole seconds such as 30",
        ));
        env.finish()?;
        // finish() returned Ok, so every required value is present.
        match (database_url, public_url) {
            (Some(database_url), Some(public_url)) => Ok(Self {
                database_url,
                listen,
                public_url,
                log_format,
                max_body_bytes,
                request_timeout,
            }),
            _ => Err(ConfigError {
                problems: vec!["internal: a required value was lost".into()],
            }),
        }
    }

    /// Whether cookies must carry `Secure` (the public URL is https).
    pub fn public_url_is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&move |name| map.get(name).cloned())
    }

    #[test]
    fn every_missing_required_variable_is_named() {
        let err = config_from(&[]).expect_err("empty environment must be refused");
        let text = err.to_string();
        assert!(text.contains("DATABASE_URL is not set"), "{text}");
        assert!(text.contains("SAMGATE_PUBLIC_URL is not set"), "{text}");
    }

    #[test]
    fn malformed_values_are_named_with_their_variable() {
        let err = config_from(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("SAMGATE_PUBLIC_URL", "not a url"),
            ("SAMGATE_LISTEN", "everywhere"),
            ("SAMGATE_LOG_FORMAT", "xml"),
        ])
        .expect_err("malformed values must be refused");
        let text = err.to_string();
        assert!(text.contains("SAMGATE_PUBLIC_URL is malformed"), "{text}");
        assert!(text.contains("SAMGATE_LISTEN is malformed"), "{text}");
        assert!(text.contains("SAMGATE_LOG_FORMAT is malformed"), "{text}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = config_from(&[
            ("DATABASE_URL", "postgres://samgate:hunter2-very-secret@db/samgate"),
            ("SAMGATE_PUBLIC_URL", "https://samgate.example.com"),
        ])
        .expect("valid configuration");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2-very-secret"), "{debug}");
        assert!(config.public_url_is_https());
    }
}
