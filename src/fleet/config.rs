//! `[api]`: the read API's settings (device registry, pagination, CORS).

use std::time::Duration;

use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Settings of the read API and of the device registry behind it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Browser origins allowed to call `/api/*` (CORS), e.g. `https://ops.example.com`;
    /// `"*"` allows any origin. Empty (the default): no CORS headers at all, so browsers
    /// only let pages served by vigil itself read the API.
    pub cors_origins: Vec<String>,
    /// A device that has sent nothing for longer than this is shown offline (and live
    /// clients get a `device` status message when that happens).
    #[serde(with = "humantime_serde")]
    pub offline_after: Duration,
    /// Page size of list endpoints when the request gives no `limit`.
    pub page_size: usize,
    /// The largest `limit` a request may ask for; more is answered 400.
    pub max_page_size: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            offline_after: Duration::from_secs(300),
            page_size: 100,
            max_page_size: 10_000,
        }
    }
}

impl ApiConfig {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| ConfigError::Invalid { key, problem };
        if self.offline_after.is_zero() {
            return Err(invalid("api.offline_after", "must be above zero".into()));
        }
        if self.page_size == 0 || self.page_size > self.max_page_size {
            return Err(invalid(
                "api.page_size",
                "must be at least 1 and at most api.max_page_size".into(),
            ));
        }
        for origin in &self.cors_origins {
            if let Err(problem) = check_origin(origin) {
                return Err(invalid("api.cors_origins", format!("{origin:?} {problem}")));
            }
        }
        Ok(())
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after, or `*`.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin == "*" {
        return Ok(());
    }
    if HeaderValue::from_str(origin).is_err() {
        return Err("is not a valid header value");
    }
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.contains('/') {
        return Err("must be scheme://host[:port] with no path or trailing slash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(check_origin("https://ops.example.com").is_ok());
        assert!(check_origin("http://127.0.0.1:5173").is_ok());
        assert!(check_origin("*").is_ok());
        assert!(check_origin("https://ops.example.com/").is_err());
        assert!(check_origin("ops.example.com").is_err());
        assert!(check_origin("https://").is_err());
        let cfg = ApiConfig {
            cors_origins: vec!["nope".into()],
            ..ApiConfig::default()
        };
        let e = cfg.validate().expect_err("bad origin").to_string();
        assert!(e.contains("api.cors_origins"), "{e}");
    }

    #[test]
    fn page_sizes_are_checked() {
        let cfg = ApiConfig {
            page_size: 20_000,
            ..ApiConfig::default()
        };
        assert!(cfg.validate().is_err());
        assert!(ApiConfig::default().validate().is_ok());
    }
}
