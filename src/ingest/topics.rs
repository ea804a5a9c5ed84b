//! Topic mapping: which payload format a topic carries, and which ids its levels name.
//!
//! A rule's pattern is a `/`-separated list of levels, each a literal, `{device}`,
//! `{metric}` or `+` (any one level, ignored). Rules are tried in order; the first match
//! wins. The captured ids are not checked here: the parser checks every id it stores.

use serde::{Deserialize, Serialize};

use crate::ingest::parse::{Format, Source};

/// One mapping from a topic pattern to a payload format.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// Levels separated by `/`: literals, `{device}`, `{metric}` or `+`; no `#`.
    pub pattern: String,
    /// How payloads on matching topics are parsed.
    pub format: Format,
}

impl TopicRule {
    fn new(pattern: &str, format: Format) -> Self {
        Self {
            pattern: pattern.to_owned(),
            format,
        }
    }
}

/// The mapping vigil uses unless configured otherwise.
pub fn default_rules() -> Vec<TopicRule> {
    vec![
        TopicRule::new("sensors/{device}/{metric}", Format::Value),
        TopicRule::new("sensors/{device}", Format::Object),
        TopicRule::new("ingest/line", Format::Line),
        TopicRule::new("devices/{device}/meta", Format::Meta),
        TopicRule::new("devices/{device}/status", Format::Status),
    ]
}

/// A topic pattern that cannot be used; each message names the pattern and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The pattern is the empty string.
    #[error("topic pattern is empty")]
    Empty,
    /// Two `/` in a row, or a leading or trailing `/`.
    #[error("topic pattern {pattern:?} has an empty level")]
    EmptyLevel {
        /// The offending pattern.
        pattern: String,
    },
    /// `#` would swallow any number of levels; vigil maps fixed-depth topics only.
    #[error("topic pattern {pattern:?} uses '#', which is not supported; use '+' per level")]
    MultiLevelWildcard {
        /// The offending pattern.
        pattern: String,
    },
    /// A `{name}` other than `{device}` and `{metric}`.
    #[error("topic pattern {pattern:?} has unknown placeholder {placeholder:?}; use {{device}} or {{metric}}")]
    UnknownPlaceholder {
        /// The offending pattern.
        pattern: String,
        /// The placeholder as written.
        placeholder: String,
    },
    /// The same placeholder twice.
    #[error("topic pattern {pattern:?} uses {placeholder:?} more than once")]
    DuplicatePlaceholder {
        /// The offending pattern.
        pattern: String,
        /// The repeated placeholder.
        placeholder: String,
    },
    /// `{`, `}` or `+` inside a level instead of making up the whole level.
    #[error("topic pattern {pattern:?}: level {level:?} mixes text with '{{', '}}' or '+'; a placeholder or '+' must be a whole level")]
    PartialLevel {
        /// The offending pattern.
        pattern: String,
        /// The offending level.
        level: String,
    },
    /// The format needs an id that only the topic can give.
    #[error("topic pattern {pattern:?}: format \"{format}\" needs a {placeholder} level")]
    MissingPlaceholder {
        /// The offending pattern.
        pattern: String,
        /// The rule's format.
        format: Format,
        /// The placeholder it needs.
        placeholder: &'static str,
    },
    /// The format never uses this id, so capturing it would silently do nothing.
    #[error("topic pattern {pattern:?}: format \"{format}\" does not use {placeholder}")]
    UnusedPlaceholder {
        /// The offending pattern.
        pattern: String,
        /// The rule's format.
        format: Format,
        /// The placeholder it ignores.
        placeholder: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Device,
    Metric,
    Any,
}

#[derive(Debug, Clone)]
struct Rule {
    levels: Vec<Level>,
    format: Format,
}

/// Compiled topic rules, ready to resolve incoming topics.
#[derive(Debug, Clone)]
pub struct TopicMap {
    rules: Vec<Rule>,
}

impl TopicMap {
    /// Compiles `rules`, refusing the first unusable pattern.
    pub fn new(rules: &[TopicRule]) -> Result<Self, TopicError> {
        let rules = rules.iter().map(compile).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The first rule matching the topic, with the captured ids.
    pub fn resolve<'t>(&self, topic: &'t str) -> Option<(Format, Source<'t>)> {
        self.rules.iter().find_map(|rule| {
            let mut source = Source::default();
            let mut parts = topic.split('/');
            for level in &rule.levels {
                let part = parts.next()?;
                match level {
                    Level::Literal(lit) if lit != part => return None,
                    Level::Literal(_) | Level::Any => {}
                    Level::Device => source.device = Some(part),
                    Level::Metric => source.metric = Some(part),
                }
            }
            // More levels in the topic than in the pattern: no match.
            parts.next().is_none().then_some((rule.format, source))
        })
    }

    /// The MQTT subscription filter of each rule (placeholders become `+`), without
    /// repeats: subscribing twice to one filter would only replace the subscription.
    pub fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let filter = rule
                .levels
                .iter()
                .map(|l| match l {
                    Level::Literal(s) => s.as_str(),
                    Level::Device | Level::Metric | Level::Any => "+",
                })
                .collect::<Vec<_>>()
                .join("/");
            if !out.contains(&filter) {
                out.push(filter);
            }
        }
        out
    }
}

fn compile(rule: &TopicRule) -> Result<Rule, TopicError> {
    let pattern = rule.pattern.as_str();
    if pattern.is_empty() {
        return Err(TopicError::Empty);
    }
    if pattern.contains('#') {
        return Err(TopicError::MultiLevelWildcard {
            pattern: pattern.to_owned(),
        });
    }
    let mut levels = Vec::new();
    for part in pattern.split('/') {
        let level = match part {
            "" => {
                return Err(TopicError::EmptyLevel {
                    pattern: pattern.to_owned(),
                })
            }
            "+" => Level::Any,
            "{device}" => Level::Device,
            "{metric}" => Level::Metric,
            p if is_placeholder(p) => {
                return Err(TopicError::UnknownPlaceholder {
                    pattern: pattern.to_owned(),
                    placeholder: p.to_owned(),
                })
            }
            p if p.contains(['{', '}', '+']) => {
                return Err(TopicError::PartialLevel {
                    pattern: pattern.to_owned(),
                    level: p.to_owned(),
                })
            }
            p => Level::Literal(p.to_owned()),
        };
        if matches!(level, Level::Device | Level::Metric) && levels.contains(&level) {
            return Err(TopicError::DuplicatePlaceholder {
                pattern: pattern.to_owned(),
                placeholder: part.to_owned(),
            });
        }
        levels.push(level);
    }
    check_format(pattern, rule.format, &levels)?;
    Ok(Rule {
        levels,
        format: rule.format,
    })
}

/// `{name}` with no other braces inside.
fn is_placeholder(level: &str) -> bool {
    level
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .is_some_and(|inner| !inner.contains(['{', '}']))
}

/// Which ids each format takes from the topic: required, optional (a fallback for
/// payloads that do not name it), or never.
fn check_format(pattern: &str, format: Format, levels: &[Level]) -> Result<(), TopicError> {
    use Format::*;
    let (device, metric) = match format {
        Value => (Use::Required, Use::Required),
        Meta | Status => (Use::Required, Use::Never),
        Object | Senml => (Use::Optional, Use::Optional),
        Line => (Use::Optional, Use::Never),
        Readings => (Use::Never, Use::Never),
    };
    for (need, level, placeholder) in [
        (device, Level::Device, "{device}"),
        (metric, Level::Metric, "{metric}"),
    ] {
        let has = levels.contains(&level);
        let pattern = pattern.to_owned();
        match need {
            Use::Required if !has => {
                return Err(TopicError::MissingPlaceholder {
                    pattern,
                    format,
                    placeholder,
                })
            }
            Use::Never if has => {
                return Err(TopicError::UnusedPlaceholder {
                    pattern,
                    format,
                    placeholder,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Use {
    Required,
    Optional,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Format::*;

    type Ids<'t> = Option<(Format, Option<&'t str>, Option<&'t str>)>;

    fn ids<'t>(m: &TopicMap, topic: &'t str) -> Ids<'t> {
        m.resolve(topic).map(|(f, s)| (f, s.device, s.metric))
    }

    fn map() -> TopicMap {
        TopicMap::new(&default_rules()).unwrap()
    }

    #[test]
    fn default_rules_resolve() {
        let cases: [(&str, Ids<'_>); 5] = [
            (
                "sensors/dev-1/temp",
                Some((Value, Some("dev-1"), Some("temp"))),
            ),
            ("sensors/dev-1", Some((Object, Some("dev-1"), None))),
            ("ingest/line", Some((Line, None, None))),
            ("devices/d/meta", Some((Meta, Some("d"), None))),
            ("devices/d/status", Some((Status, Some("d"), None))),
        ];
        let m = map();
        for (topic, want) in cases {
            assert_eq!(ids(&m, topic), want, "{topic}");
        }
    }

    #[test]
    fn no_match() {
        let m = map();
        let topics = [
            "sensors/a/b/c",
            "sensors",
            "",
            "ingest/line/x",
            "devices/d/x",
            "Sensors/a",
        ];
        for topic in topics.into_iter().chain(["/sensors/a"]) {
            assert_eq!(ids(&m, topic), None, "{topic:?}");
        }
    }

    #[test]
    fn empty_levels_are_captured_for_the_parser_to_refuse() {
        let got = ids(&map(), "sensors//temp");
        assert_eq!(got, Some((Value, Some(""), Some("temp"))));
    }

    #[test]
    fn first_rule_wins_and_plus_matches_any_level() {
        let rules = [
            TopicRule::new("site/+/{device}/power", Line),
            TopicRule::new("site/{device}/+/{metric}", Value),
            TopicRule::new("site/a/{device}/power", Object),
        ];
        let m = TopicMap::new(&rules).unwrap();
        assert_eq!(ids(&m, "site/a/d1/power"), Some((Line, Some("d1"), None)));
        assert_eq!(
            ids(&m, "site/a/d1/volts"),
            Some((Value, Some("a"), Some("volts")))
        );
    }

    #[test]
    fn filters_replace_placeholders() {
        let want = [
            "sensors/+/+",
            "sensors/+",
            "ingest/line",
            "devices/+/meta",
            "devices/+/status",
        ];
        assert_eq!(map().filters(), want);
        let rules = [
            TopicRule::new("a/{device}/{metric}", Value),
            TopicRule::new("a/{metric}/{device}", Value),
        ];
        assert_eq!(TopicMap::new(&rules).unwrap().filters(), vec!["a/+/+"]);
    }

    fn err(pattern: &str, format: Format) -> TopicError {
        TopicMap::new(&[TopicRule::new(pattern, format)]).unwrap_err()
    }

    #[test]
    fn invalid_patterns() {
        let cases = [
            ("", Line, "Empty"),
            ("a//b", Line, "EmptyLevel"),
            ("/a", Line, "EmptyLevel"),
            ("a/", Line, "EmptyLevel"),
            ("a/#", Line, "MultiLevelWildcard"),
            ("a/{dev}", Line, "UnknownPlaceholder"),
            ("a/{}", Line, "UnknownPlaceholder"),
            (
                "a/{device}/{device}/{metric}",
                Value,
                "DuplicatePlaceholder",
            ),
            ("a/x{device}", Line, "PartialLevel"),
            ("a/{device}x", Line, "PartialLevel"),
            ("a/{{device}}", Line, "PartialLevel"),
            ("a/b+", Line, "PartialLevel"),
            ("a/{device}", Value, "MissingPlaceholder"),
            ("a/b", Status, "MissingPlaceholder"),
            ("a/{device}/{metric}", Meta, "UnusedPlaceholder"),
            ("a/{metric}", Line, "UnusedPlaceholder"),
            ("a/{device}", Readings, "UnusedPlaceholder"),
        ];
        for (pattern, format, kind) in cases {
            let e = format!("{:?}", err(pattern, format));
            let variant = e.split([' ', '{']).next().unwrap_or_default();
            assert_eq!(variant, kind, "{pattern:?}");
        }
        // The other valid shapes.
        for (pattern, format) in [
            ("x/{device}/{metric}", Senml),
            ("x/{device}", Line),
            ("$SYS/+", Readings),
        ] {
            assert!(
                TopicMap::new(&[TopicRule::new(pattern, format)]).is_ok(),
                "{pattern}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_pattern() {
        assert_eq!(
            err("a/{dev}", Line).to_string(),
            r#"topic pattern "a/{dev}" has unknown placeholder "{dev}"; use {device} or {metric}"#
        );
        assert_eq!(
            err("a/{device}", Value).to_string(),
            r#"topic pattern "a/{device}": format "value" needs a {metric} level"#
        );
        assert!(err("a/#", Line).to_string().contains("\"a/#\""));
    }

    #[test]
    fn rules_deserialize() {
        let json = r#"{"pattern": "x/{device}", "format": "object"}"#;
        let rule: TopicRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule, TopicRule::new("x/{device}", Object));
        let json = r#"{"pattern": "x", "format": "line", "qos": 1}"#;
        assert!(serde_json::from_str::<TopicRule>(json).is_err());
    }
}
