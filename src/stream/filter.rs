//! Subscription filters: `<device>/<metric>` with the MQTT wildcards `+` and `#`.
//!
//! Ids never contain `/ + #` (see [`crate::ingest::parse::valid_id`]), so a filter has
//! exactly two levels, or is `#` alone. With two levels `#` and `+` mean the same at the
//! metric level, so every filter normalises to one of four shapes, which is what the
//! hub's index is keyed by.

use std::fmt;

use crate::ingest::parse::{valid_id, MAX_ID_LEN};

/// A parsed filter, normalised (`pump-7/#` and `pump-7/+` are the same filter).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `#`, `+/+`, `+/#`: every device and metric.
    All,
    /// `pump-7/+`: every metric of one device.
    Device(String),
    /// `+/temperature`: one metric of every device.
    Metric(String),
    /// `pump-7/temperature`: one series.
    Series(String, String),
}

impl Filter {
    /// Parses a client's filter; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Filter, String> {
        if text == "#" {
            return Ok(Filter::All);
        }
        let levels: Vec<&str> = text.split('/').collect();
        if levels.len() != 2 {
            return Err(format!(
                "filter {} must be `<device>/<metric>` (two levels, `+` or `#` as wildcards) \
                 or `#`",
                show(text)
            ));
        }
        let device = match levels[0] {
            "+" => None,
            "#" => {
                return Err(format!(
                    "filter {}: `#` may only be the last level",
                    show(text)
                ))
            }
            id => Some(level(text, "device", id)?),
        };
        let metric = match levels[1] {
            "+" | "#" => None,
            id => Some(level(text, "metric", id)?),
        };
        Ok(match (device, metric) {
            (None, None) => Filter::All,
            (Some(d), None) => Filter::Device(d),
            (None, Some(m)) => Filter::Metric(m),
            (Some(d), Some(m)) => Filter::Series(d, m),
        })
    }

    /// Whether a reading (or an anomaly) of `device`/`metric` matches.
    pub fn matches(&self, device: &str, metric: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Device(d) => d == device,
            Filter::Metric(m) => m == metric,
            Filter::Series(d, m) => d == device && m == metric,
        }
    }

    /// Whether a device-level message (status, metadata) of `device` matches: the
    /// filter's device level names it or is a wildcard.
    pub fn matches_device(&self, device: &str) -> bool {
        match self {
            Filter::All | Filter::Metric(_) => true,
            Filter::Device(d) | Filter::Series(d, _) => d == device,
        }
    }
}

/// The canonical spelling: `#`, `pump-7/+`, `+/temperature`, `pump-7/temperature`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => f.write_str("#"),
            Filter::Device(d) => write!(f, "{d}/+"),
            Filter::Metric(m) => write!(f, "+/{m}"),
            Filter::Series(d, m) => write!(f, "{d}/{m}"),
        }
    }
}

fn level(text: &str, what: &str, id: &str) -> Result<String, String> {
    if valid_id(id) {
        return Ok(id.to_owned());
    }
    Err(format!(
        "filter {}: {what} level {} is neither a whole-level wildcard (`+`) nor an id \
         of 1 to {MAX_ID_LEN} characters from A-Z a-z 0-9 . _ : -",
        show(text),
        show(id)
    ))
}

/// A client's text, quoted and shortened for an error message.
fn show(s: &str) -> String {
    let short: String = s.chars().take(64).collect();
    let more = if s.chars().count() > 64 { "…" } else { "" };
    format!("{:?}", format!("{short}{more}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Filter {
        Filter::parse(s).unwrap()
    }

    #[test]
    fn every_shape_parses_and_normalises() {
        assert_eq!(p("#"), Filter::All);
        assert_eq!(p("+/+"), Filter::All);
        assert_eq!(p("+/#"), Filter::All);
        assert_eq!(p("pump-7/+"), Filter::Device("pump-7".into()));
        assert_eq!(p("pump-7/#"), Filter::Device("pump-7".into()));
        assert_eq!(p("+/temperature"), Filter::Metric("temperature".into()));
        assert_eq!(
            p("pump-7/temp"),
            Filter::Series("pump-7".into(), "temp".into())
        );
        assert_eq!(p("pump-7/#").to_string(), "pump-7/+");
        assert_eq!(p("+/#").to_string(), "#");
    }

    #[test]
    fn bad_filters_are_refused_with_a_reason() {
        for (bad, says) in [
            ("a/b/c", "two levels"),
            ("pump", "two levels"),
            ("", "two levels"),
            ("a/", "metric level"),
            ("/a", "device level"),
            ("pump+/x", "device level \"pump+\""),
            ("x/te#mp", "metric level"),
            ("#/x", "`#` may only be the last level"),
            ("a b/x", "device level"),
        ] {
            let e = Filter::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("{}/m", "d".repeat(129));
        assert!(Filter::parse(&long).is_err());
    }

    #[test]
    fn matching_follows_the_levels() {
        let (d, m) = ("pump-7", "temp");
        assert!(p("#").matches(d, m));
        assert!(p("pump-7/+").matches(d, m));
        assert!(!p("pump-8/+").matches(d, m));
        assert!(p("+/temp").matches(d, m));
        assert!(!p("+/hum").matches(d, m));
        assert!(p("pump-7/temp").matches(d, m));
        assert!(!p("pump-7/hum").matches(d, m));
        assert!(!p("pump-7/temp").matches("pump-70", m));
    }

    #[test]
    fn device_messages_match_on_the_device_level() {
        assert!(p("#").matches_device("pump-7"));
        assert!(p("+/temp").matches_device("pump-7"));
        assert!(p("pump-7/+").matches_device("pump-7"));
        assert!(p("pump-7/temp").matches_device("pump-7"));
        assert!(!p("pump-8/temp").matches_device("pump-7"));
    }
}
