//! Query-string parsing for the history and export endpoints: pure, with errors that
//! name the parameter.
//!
//! Times are RFC 3339 or unix milliseconds. Unknown and repeated parameters are refused so
//! that a typo (`maxpoints=`) is an error rather than a silently ignored default.

use chrono::{DateTime, TimeDelta, TimeZone as _, Utc};

use crate::ingest::parse::valid_id;

/// A parameter the client got wrong; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn bad(msg: impl Into<String>) -> ParamError {
    ParamError(msg.into())
}

/// The query string as name/value pairs, refusing names outside `allowed` and repeats.
pub fn pairs(query: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, ParamError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(bad(format!(
                "unknown parameter `{k}` (expected one of: {})",
                allowed.join(", ")
            )));
        }
        if out.iter().any(|(name, _)| *name == k) {
            return Err(bad(format!("parameter `{k}` given more than once")));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The value of `name` in `pairs`, if given.
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A device or metric id, checked against the id rule.
pub fn id(name: &str, value: Option<&str>) -> Result<Option<String>, ParamError> {
    match value {
        None => Ok(None),
        Some(v) if valid_id(v) => Ok(Some(v.to_owned())),
        Some(v) => Err(bad(format!(
            "`{name}` must match [A-Za-z0-9._:-]{{1,128}}, got {:?}",
            v.chars().take(64).collect::<String>()
        ))),
    }
}

/// A time: RFC 3339 (any offset) or unix milliseconds.
pub fn time(name: &str, value: &str) -> Result<DateTime<Utc>, ParamError> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| bad(format!("`{name}`: {ms} ms is out of range")));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            bad(format!(
                "`{name}` must be RFC 3339 (2026-11-23T10:00:00Z) or unix milliseconds, \
                 got {:?}: {e}",
                v.chars().take(64).collect::<String>()
            ))
        })
}

/// The `[from, to]` range with the contract's defaults: `to` = `now`, `from` = `to` − `span`.
pub fn range(
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
    span: TimeDelta,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ParamError> {
    let to = to.map(|v| time("to", v)).transpose()?.unwrap_or(now);
    let from = match from {
        Some(v) => time("from", v)?,
        None => to.checked_sub_signed(span).unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    if from > to {
        return Err(bad(format!(
            "`from` ({}) is after `to` ({})",
            from.to_rfc3339(),
            to.to_rfc3339()
        )));
    }
    Ok((from, to))
}

/// `max_points`: 1..=`cap`, `default` when absent.
pub fn max_points(value: Option<&str>, default: usize, cap: usize) -> Result<usize, ParamError> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=cap).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "`max_points` must be an integer from 1 to {cap}, got {:?}",
            v.chars().take(32).collect::<String>()
        ))),
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Arrow,
}

/// `format`: `csv` (the default) or `arrow`.
pub fn format(value: Option<&str>) -> Result<Format, ParamError> {
    match value.map(str::trim) {
        None | Some("csv") => Ok(Format::Csv),
        Some("arrow") => Ok(Format::Arrow),
        Some(other) => Err(bad(format!(
            "`format` must be csv or arrow, got {:?}",
            other.chars().take(32).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        let e = pairs(Some("device=a&maxpoints=3"), &["device", "max_points"]).unwrap_err();
        assert!(e.0.contains("`maxpoints`"), "{e}");
        let e = pairs(Some("device=a&device=b"), &["device"]).unwrap_err();
        assert!(e.0.contains("`device`") && e.0.contains("more than once"), "{e}");
        let p = pairs(Some("device=pump%2D7"), &["device"]).unwrap();
        assert_eq!(get(&p, "device"), Some("pump-7"));
        assert!(pairs(None, &["device"]).unwrap().is_empty());
    }

    #[test]
    fn times_are_rfc3339_or_unix_millis() {
        let t = time("from", "2026-11-23T13:00:00+01:00").unwrap();
        assert_eq!(t, now());
        assert_eq!(time("from", &now().timestamp_millis().to_string()).unwrap(), now());
        let e = time("from", "yesterday").unwrap_err();
        assert!(e.0.contains("`from`"), "{e}");
        let e = time("to", "99999999999999999").unwrap_err();
        assert!(e.0.contains("`to`"), "{e}");
    }

    #[test]
    fn the_range_defaults_to_the_last_hour_and_refuses_from_after_to() {
        let (f, t) = range(None, None, now(), TimeDelta::hours(1)).unwrap();
        assert_eq!((f, t), (now() - TimeDelta::hours(1), now()));
        let e = range(Some("2026-11-24T00:00:00Z"), None, now(), TimeDelta::hours(1)).unwrap_err();
        assert!(e.0.contains("`from`") && e.0.contains("after"), "{e}");
        let (f, t) = range(Some("0"), Some("0"), now(), TimeDelta::hours(1)).unwrap();
        assert_eq!(f, t);
    }

    #[test]
    fn max_points_is_bounded() {
        assert_eq!(max_points(None, 1000, 10_000).unwrap(), 1000);
        assert_eq!(max_points(Some("10000"), 1000, 10_000).unwrap(), 10_000);
        for v in ["0", "10001", "-1", "many", ""] {
            let e = max_points(Some(v), 1000, 10_000).unwrap_err();
            assert!(e.0.contains("`max_points`"), "{v}: {e}");
        }
    }

    #[test]
    fn ids_and_formats_are_checked() {
        assert_eq!(id("device", Some("pump-7")).unwrap().as_deref(), Some("pump-7"));
        assert_eq!(id("device", None).unwrap(), None);
        assert!(id("metric", Some("a/b")).unwrap_err().0.contains("`metric`"));
        assert_eq!(format(None).unwrap(), Format::Csv);
        assert_eq!(format(Some("arrow")).unwrap(), Format::Arrow);
        assert!(format(Some("parquet")).unwrap_err().0.contains("`format`"));
    }
}
