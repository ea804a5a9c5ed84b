//! JSON helpers shared by the JSON formats: parsing with classified errors, and messages
//! that say which field was wrong and what it held.

use serde_json::Value;

use super::ids::show;
use super::{Collector, Fault};
use crate::ingest::reading::RejectReason;

/// Spellings of non-finite numbers that JSON encoders emit although JSON has none.
const NON_FINITE_TOKENS: [&str; 6] = ["NaN", "nan", "Infinity", "infinity", "Inf", "inf"];

/// Parses a whole payload as one JSON document; an empty or broken payload is rejected
/// into `out` (naming what was `expected`) and gives `None`.
pub(crate) fn document(out: &mut Collector, text: &str, expected: &str) -> Option<Value> {
    if text.trim().is_empty() {
        out.reject(
            None,
            Fault::malformed(format!("empty payload; expected {expected}")),
        );
        return None;
    }
    match parse(text) {
        Ok(doc) => Some(doc),
        Err(fault) => {
            out.reject(None, fault);
            None
        }
    }
}

/// Parses a JSON document, classifying failures as `Malformed` or `NonFinite`.
pub(crate) fn parse(text: &str) -> Result<Value, Fault> {
    serde_json::from_str(text).map_err(|e| syntax_fault(&e, text))
}

/// Explains a JSON syntax error. NaN, Infinity and numbers beyond f64 are `NonFinite`.
pub(crate) fn syntax_fault(e: &serde_json::Error, text: &str) -> Fault {
    let (line, column) = (e.line(), e.column());
    let msg = e.to_string();
    if msg.starts_with("number out of range") {
        return Fault::new(
            RejectReason::NonFinite,
            format!(
                "number at line {line} column {column} is beyond the range of a 64-bit float; \
                 only finite numbers are stored"
            ),
        );
    }
    if let Some(token) = non_finite_token(text, line, column) {
        return Fault::new(
            RejectReason::NonFinite,
            format!(
                "{token} at line {line} column {column}: NaN and Infinity are not valid JSON \
                 numbers; only finite numbers are stored"
            ),
        );
    }
    Fault::malformed(format!("invalid JSON: {msg}"))
}

/// The NaN/Infinity token at or just before serde_json's error position, if any.
fn non_finite_token(text: &str, line: usize, column: usize) -> Option<&'static str> {
    let line_text = text.split('\n').nth(line.checked_sub(1)?)?;
    // serde_json reports the column of the byte it stopped at: the token's first letter,
    // or the letter after a sign. Look a few bytes either side.
    let at = column.saturating_sub(1);
    (at.saturating_sub(2)..=at).find_map(|start| {
        let rest = line_text.get(start..)?;
        let rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
        NON_FINITE_TOKENS.into_iter().find(|t| rest.starts_with(t))
    })
}

/// Names a JSON value's kind, with the value itself when it is short.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", show(s)),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// `field "x": expected <expected>, found <what>`.
pub(crate) fn wrong_type(field: &str, expected: &str, found: &Value) -> Fault {
    Fault::new(
        RejectReason::WrongType,
        format!(
            "field \"{field}\": expected {expected}, found {}",
            describe(found)
        ),
    )
}

/// A required field that is absent.
pub(crate) fn missing(field: &str) -> Fault {
    Fault::malformed(format!("field \"{field}\" is missing"))
}

/// A numeric field.
pub(crate) fn number(field: &str, v: &Value) -> Result<f64, Fault> {
    match v {
        // None only when serde_json keeps numbers as text and this one overflows f64.
        Value::Number(n) => n.as_f64().ok_or_else(|| {
            Fault::new(
                RejectReason::NonFinite,
                format!("field \"{field}\": {n} is beyond the range of a 64-bit float"),
            )
        }),
        other => Err(wrong_type(field, "a number", other)),
    }
}

/// A string field.
pub(crate) fn string<'v>(field: &str, v: &'v Value) -> Result<&'v str, Fault> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(wrong_type(field, "a string", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fault(text: &str) -> Fault {
        parse(text).unwrap_err()
    }

    #[test]
    fn malformed_json_keeps_serde_position() {
        let f = fault("{\"value\": 1,}");
        assert_eq!(f.reason, RejectReason::Malformed);
        assert!(
            f.detail
                .starts_with("invalid JSON: trailing comma at line 1 column 13"),
            "{}",
            f.detail
        );
        let f = fault("{\"value\":");
        assert_eq!(f.reason, RejectReason::Malformed);
        assert!(f.detail.contains("EOF"), "{}", f.detail);
    }

    #[test]
    fn nan_and_infinity_tokens_are_non_finite() {
        for text in [
            "{\"value\": NaN}",
            "{\"value\":NaN}",
            "{\"value\": Infinity}",
            "{\"value\": -Infinity}",
            "[1,\n {\"v\": inf}]",
            "NaN",
        ] {
            let f = fault(text);
            assert_eq!(f.reason, RejectReason::NonFinite, "{text}: {}", f.detail);
            assert!(
                f.detail
                    .contains("NaN and Infinity are not valid JSON numbers"),
                "{}",
                f.detail
            );
        }
    }

    #[test]
    fn overflowing_numbers_are_non_finite() {
        let f = fault("{\"value\": 1e400}");
        assert_eq!(f.reason, RejectReason::NonFinite);
        assert!(
            f.detail.contains("beyond the range of a 64-bit float"),
            "{}",
            f.detail
        );
        let f = fault("[-1e999]");
        assert_eq!(f.reason, RejectReason::NonFinite);
    }

    #[test]
    fn other_letters_stay_malformed() {
        let f = fault("{\"value\": nope}");
        assert_eq!(f.reason, RejectReason::Malformed);
        let f = fault("{\"nan\" 1}");
        assert_eq!(f.reason, RejectReason::Malformed, "{}", f.detail);
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!(false)), "false");
        assert_eq!(describe(&json!(1.5)), "number 1.5");
        assert_eq!(describe(&json!("abc")), "string \"abc\"");
        assert_eq!(describe(&json!([1, 2])), "an array of 2 items");
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(
            wrong_type("value", "a number", &json!("abc")).detail,
            "field \"value\": expected a number, found string \"abc\""
        );
    }

    #[test]
    fn typed_getters() {
        assert_eq!(number("v", &json!(3)), Ok(3.0));
        assert_eq!(
            number("v", &json!(true)).unwrap_err().reason,
            RejectReason::WrongType
        );
        assert_eq!(string("n", &json!("x")), Ok("x"));
        assert_eq!(
            string("n", &json!(1)).unwrap_err().detail,
            "field \"n\": expected a string, found number 1"
        );
        assert_eq!(missing("value").detail, "field \"value\" is missing");
    }
}
