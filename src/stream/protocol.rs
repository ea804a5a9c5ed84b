//! The messages of `GET /ws` and `GET /api/v1/stream`: what clients send, what they get.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::detect::Anomaly;
use crate::ingest::parse::parse_timestamp_str;
use crate::ingest::reading::{DeviceUpdate, Reading};

/// A request from a WebSocket client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// `{"op":"subscribe","filter":"pump-7/+","since":"..."}`
    Subscribe {
        filter: String,
        since: Option<DateTime<Utc>>,
    },
    /// `{"op":"unsubscribe","filter":"pump-7/+"}`
    Unsubscribe { filter: String },
}

/// Parses a client's text frame; the error is sent back in an `error` frame.
pub fn parse_client(text: &str) -> Result<ClientMsg, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("message is not JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("message must be a JSON object with an \"op\"".into());
    };
    let op = match obj.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err("\"op\" must be a string".into()),
        None => return Err("message has no \"op\" (subscribe or unsubscribe)".into()),
    };
    let filter = match obj.get("filter") {
        Some(Value::String(f)) => f.clone(),
        Some(_) => return Err(format!("{op}: \"filter\" must be a string")),
        None => return Err(format!("{op}: \"filter\" is missing")),
    };
    match op {
        "subscribe" => {
            let since = match obj.get("since") {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_since(v)?),
            };
            Ok(ClientMsg::Subscribe { filter, since })
        }
        "unsubscribe" => Ok(ClientMsg::Unsubscribe { filter }),
        other => Err(format!(
            "unknown op {:?}: expected \"subscribe\" or \"unsubscribe\"",
            other.chars().take(64).collect::<String>()
        )),
    }
}

/// `since` as RFC 3339 or unix milliseconds (a number or a string of digits).
pub fn parse_since(v: &Value) -> Result<DateTime<Utc>, String> {
    let parsed = match v {
        Value::String(s) => parse_timestamp_str(s),
        Value::Number(n) => parse_timestamp_str(&n.to_string()),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let shown: String = v.to_string().chars().take(64).collect();
        format!("\"since\" must be an RFC 3339 time or unix milliseconds, got {shown}")
    })
}

/// One server message: its type (the SSE event name) and its JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: &'static str,
    pub json: String,
    /// Readings carried (for the metrics).
    pub readings: usize,
}

impl Frame {
    fn of(kind: &'static str, value: Value) -> Frame {
        Frame {
            kind,
            json: value.to_string(),
            readings: 0,
        }
    }

    /// The subscription is in effect; after a backfill, how many stored readings it sent.
    pub fn subscribed(filter: &str, backfill: Option<(usize, bool)>) -> Frame {
        let mut v = json!({"type": "subscribed", "filter": filter});
        if let Some((sent, truncated)) = backfill {
            v["backfilled"] = json!(sent);
            v["truncated"] = json!(truncated);
        }
        Frame::of("subscribed", v)
    }

    pub fn unsubscribed(filter: &str) -> Frame {
        Frame::of(
            "unsubscribed",
            json!({"type": "unsubscribed", "filter": filter}),
        )
    }

    pub fn error(message: &str) -> Frame {
        Frame::of("error", json!({"type": "error", "message": message}))
    }

    pub fn lagged(skipped: u64) -> Frame {
        Frame::of("lagged", json!({"type": "lagged", "skipped": skipped}))
    }

    pub fn device(update: &DeviceUpdate) -> Frame {
        let v = match update {
            DeviceUpdate::Status { device_id, online } => json!({
                "type": "device",
                "device_id": device_id,
                "status": if *online { "online" } else { "offline" },
            }),
            DeviceUpdate::Meta { device_id, meta } => {
                json!({"type": "device", "device_id": device_id, "meta": meta})
            }
        };
        Frame::of("device", v)
    }

    pub fn anomaly(a: &Anomaly) -> Frame {
        let mut v = serde_json::to_value(a).expect("an anomaly is plain data");
        if let Value::Object(obj) = &mut v {
            obj.insert("type".into(), json!("anomaly"));
        }
        Frame::of("anomaly", v)
    }

    /// A `readings` batch, written straight into one string.
    pub fn readings<'a>(readings: impl IntoIterator<Item = &'a Reading>) -> Frame {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(br#"{"type":"readings","readings":["#);
        let mut n = 0;
        for r in readings {
            if n > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, r).expect("a reading is plain data");
            n += 1;
        }
        out.extend_from_slice(b"]}");
        Frame {
            kind: "readings",
            json: String::from_utf8(out).expect("serde_json writes UTF-8"),
            readings: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn subscribe_and_unsubscribe_parse() {
        assert_eq!(
            parse_client(r##"{"op":"subscribe","filter":"p/+"}"##).unwrap(),
            ClientMsg::Subscribe {
                filter: "p/+".into(),
                since: None
            }
        );
        let t = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        for since in [
            r#"1700000000123"#,
            r#""1700000000123""#,
            r#""2023-11-14T22:13:20.123Z""#,
        ] {
            let text = format!(r##"{{"op":"subscribe","filter":"#","since":{since}}}"##);
            assert_eq!(
                parse_client(&text).unwrap(),
                ClientMsg::Subscribe {
                    filter: "#".into(),
                    since: Some(t)
                },
                "{since}"
            );
        }
        assert_eq!(
            parse_client(r##"{"op":"unsubscribe","filter":"#"}"##).unwrap(),
            ClientMsg::Unsubscribe { filter: "#".into() }
        );
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        for (bad, says) in [
            ("hello", "not JSON"),
            ("[1]", "JSON object"),
            (r##"{"filter":"#"}"##, "no \"op\""),
            (r##"{"op":3,"filter":"#"}"##, "\"op\" must be a string"),
            (
                r##"{"op":"publish","filter":"#"}"##,
                "unknown op \"publish\"",
            ),
            (r##"{"op":"subscribe"}"##, "\"filter\" is missing"),
            (r##"{"op":"subscribe","filter":7}"##, "must be a string"),
            (
                r##"{"op":"subscribe","filter":"#","since":"yesterday"}"##,
                "\"since\"",
            ),
            (
                r##"{"op":"subscribe","filter":"#","since":true}"##,
                "\"since\"",
            ),
        ] {
            let e = parse_client(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn frames_are_the_documented_json() {
        let r = Reading {
            device_id: "pump-7".into(),
            metric: "temperature".into(),
            ts: Utc.timestamp_millis_opt(1_700_000_000_123).unwrap(),
            value: 21.5,
        };
        let f = Frame::readings([&r, &r]);
        let v: Value = serde_json::from_str(&f.json).unwrap();
        assert_eq!(v["type"], "readings");
        assert_eq!(v["readings"].as_array().unwrap().len(), 2);
        assert_eq!(f.readings, 2);
        assert_eq!(
            v["readings"][0],
            json!({"device_id":"pump-7","metric":"temperature",
                   "ts":"2023-11-14T22:13:20.123Z","value":21.5})
        );
        let d = Frame::device(&DeviceUpdate::Status {
            device_id: "pump-7".into(),
            online: false,
        });
        assert_eq!(
            serde_json::from_str::<Value>(&d.json).unwrap(),
            json!({"type":"device","device_id":"pump-7","status":"offline"})
        );
        let s = Frame::subscribed("#", Some((3, true)));
        assert_eq!(
            serde_json::from_str::<Value>(&s.json).unwrap(),
            json!({"type":"subscribed","filter":"#","backfilled":3,"truncated":true})
        );
    }
}
