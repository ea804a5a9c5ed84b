//! Query parameters of the read API: a strict `Query` whose errors name the parameter,
//! and the shared value types (times, limits, ids).
//!
//! Convention: an unknown parameter is a 400 (declare the struct with
//! `#[serde(deny_unknown_fields)]`), so a typo such as `limt=10` is never silently ignored.
//! `ApiQuery` cannot take a repeated parameter (`filter=a&filter=b`): read those from
//! `axum::extract::RawQuery` with `url::form_urlencoded::parse`, and answer with [`bad`].

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

use super::AppError;
use crate::ingest::parse::{parse_timestamp_str, valid_id, MAX_ID_LEN};

/// A 400 naming the parameter.
pub fn bad(name: &str, problem: impl std::fmt::Display) -> AppError {
    AppError::Client(
        StatusCode::BAD_REQUEST,
        format!("query parameter `{name}`: {problem}"),
    )
}

/// Like axum's `Query`, but a bad query string is answered `{"error": ...}` naming the
/// parameter (serde's message, e.g. "limit: invalid digit found in string").
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(t)| ApiQuery(t))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                AppError::Client(StatusCode::BAD_REQUEST, reword(detail))
            })
    }
}

/// serde's wording (`limit: invalid digit`, ``unknown field `x` ``) as vigil's.
fn reword(detail: &str) -> String {
    // serde_path_to_error puts the parameter in front: "limit: invalid digit ...".
    let (name, problem) = match detail.split_once(": ") {
        Some((name, problem)) if !name.is_empty() && !name.contains(' ') => (Some(name), problem),
        _ => (None, detail),
    };
    let quoted = |prefix: &str| {
        let rest = problem.strip_prefix(prefix)?;
        let (name, tail) = rest.split_once('`')?;
        Some((
            name.to_owned(),
            tail.trim_start_matches(',').trim().to_owned(),
        ))
    };
    if let Some((name, expected)) = quoted("unknown field `") {
        return format!("unknown query parameter `{name}`; {expected}");
    }
    if let Some((name, _)) = quoted("duplicate field `") {
        return format!("query parameter `{name}` is given more than once");
    }
    match name {
        Some(name) => format!("query parameter `{name}`: {problem}"),
        None => format!("bad query string: {detail}"),
    }
}

/// A time parameter: RFC 3339 (`2026-11-23T10:00:00Z`) or unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a time as RFC 3339 (e.g. 2026-11-23T10:00:00Z) or unix milliseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Time, E> {
                parse_timestamp_str(s)
                    .map(Time)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(V)
    }
}

/// A device or metric id parameter: `[A-Za-z0-9._:-]{1,128}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        let s = String::deserialize(d)?;
        check_id(&s).map_err(de::Error::custom)?;
        Ok(Id(s))
    }
}

/// Why `s` is not a valid id, if it is not.
pub fn check_id(s: &str) -> Result<(), String> {
    if valid_id(s) {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not an id (1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : -)",
            s.chars().take(MAX_ID_LEN + 1).collect::<String>()
        ))
    }
}

/// A count parameter such as `limit` or `max_points`: `default` when absent, else
/// 1..=`max`.
pub fn bounded(
    name: &str,
    given: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, AppError> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(bad(name, format!("{n} is not between 1 and {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        from: Option<Time>,
        device: Option<Id>,
        limit: Option<usize>,
    }

    async fn parse(query: &str) -> Result<Q, String> {
        let (mut parts, ()) = Request::builder()
            .uri(format!("/x?{query}"))
            .body(())
            .expect("valid request")
            .into_parts();
        match ApiQuery::<Q>::from_request_parts(&mut parts, &()).await {
            Ok(ApiQuery(q)) => Ok(q),
            Err(AppError::Client(status, m)) => {
                assert_eq!(status, StatusCode::BAD_REQUEST);
                Err(m)
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[tokio::test]
    async fn times_are_rfc3339_or_unix_ms() {
        let a = parse("from=2026-11-23T10:00:00Z").await.expect("valid");
        let b = parse("from=1795428000000").await.expect("valid");
        assert_eq!(a.from, b.from);
        assert_eq!(a.from.expect("given").0.timestamp(), 1_795_428_000);
        let e = parse("from=yesterday").await.expect_err("bad time");
        assert!(e.contains("from") && e.contains("RFC 3339"), "{e}");
    }

    #[tokio::test]
    async fn every_error_names_the_parameter() {
        let e = parse("limit=ten").await.expect_err("bad limit");
        assert!(e.contains("limit"), "{e}");
        let e = parse("limit=").await.expect_err("empty limit");
        assert!(e.contains("limit"), "{e}");
        let e = parse("device=a/b").await.expect_err("bad id");
        assert!(e.contains("device") && e.contains("not an id"), "{e}");
        assert_eq!(
            parse("limit=ten").await.expect_err("bad limit"),
            "query parameter `limit`: invalid digit found in string"
        );
        let e = parse("limt=3").await.expect_err("unknown");
        assert!(
            e.starts_with("unknown query parameter `limt`; expected one of"),
            "{e}"
        );
        let e = parse("limit=1&limit=2").await.expect_err("twice");
        assert_eq!(e, "query parameter `limit` is given more than once");
        assert!(parse("").await.is_ok());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(bounded("limit", None, 100, 1000).ok(), Some(100));
        assert_eq!(bounded("limit", Some(1000), 100, 1000).ok(), Some(1000));
        assert!(bounded("limit", Some(0), 100, 1000).is_err());
        let too_big = bounded("limit", Some(1001), 100, 1000);
        let AppError::Client(_, m) = too_big.expect_err("too big") else {
            panic!("a client error")
        };
        assert!(m.contains("`limit`"), "{m}");
    }
}
