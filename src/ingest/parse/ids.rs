//! The identifier rule shared by devices and metrics, and safe quoting of bad input.

use super::Fault;
use crate::ingest::reading::RejectReason;

/// The longest device or metric id, in characters.
pub const MAX_ID_LEN: usize = 128;

/// How many characters of a bad value a message shows.
const SHOWN_CHARS: usize = 64;

/// Whether `s` is a valid device or metric id: `[A-Za-z0-9._:-]{1,128}`.
///
/// Ids never contain the MQTT level and wildcard characters `/ + #`, so they are safe in
/// topics, and never contain spaces or quotes, so they are safe in logs and CSV.
pub fn valid_id(s: &str) -> bool {
    // Every allowed character is ASCII, so the byte length is the character length.
    (1..=MAX_ID_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Checks an id, naming `field` and the bad value when it fails.
pub(crate) fn check_id(field: &str, s: &str) -> Result<(), Fault> {
    if valid_id(s) {
        return Ok(());
    }
    let why = if s.is_empty() {
        "is empty".to_owned()
    } else if s.chars().count() > MAX_ID_LEN {
        format!(
            "is {} characters long, the limit is {MAX_ID_LEN}",
            s.chars().count()
        )
    } else {
        "has characters outside A-Z a-z 0-9 . _ : -".to_owned()
    };
    Err(Fault::new(
        RejectReason::InvalidId,
        format!("{field} {} {why}", show(s)),
    ))
}

/// Quotes untrusted text for a message: escaped, and cut to a readable length.
pub(crate) fn show(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => {
            let total = s.chars().count();
            format!("{:?}… ({total} characters)", &s[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        for id in [
            "a",
            "dev-1",
            "urn:dev:ow:10e2073a01080063",
            "temp_C.avg",
            &"x".repeat(128),
        ] {
            assert!(valid_id(id), "{id}");
        }
    }

    #[test]
    fn invalid_ids() {
        for id in [
            "",
            "a/b",
            "a+b",
            "a#",
            "a b",
            "é",
            "a\"b",
            "a\n",
            &"x".repeat(129),
        ] {
            assert!(!valid_id(id), "{id:?}");
        }
    }

    #[test]
    fn check_id_explains() {
        let f = check_id("device", "").unwrap_err();
        assert_eq!(f.reason, RejectReason::InvalidId);
        assert_eq!(f.detail, r#"device "" is empty"#);

        let f = check_id("metric", "a/b\n").unwrap_err();
        assert_eq!(
            f.detail,
            r#"metric "a/b\n" has characters outside A-Z a-z 0-9 . _ : -"#
        );

        let f = check_id("device", &"y".repeat(200)).unwrap_err();
        assert!(
            f.detail
                .contains("is 200 characters long, the limit is 128"),
            "{}",
            f.detail
        );
        assert!(f.detail.contains("… (200 characters)"), "{}", f.detail);
    }

    #[test]
    fn show_cuts_on_character_boundaries() {
        let s = "é".repeat(100);
        let shown = show(&s);
        assert!(
            shown.starts_with(&format!("\"{}\"", "é".repeat(64))),
            "{shown}"
        );
        assert!(shown.ends_with("… (100 characters)"));
        assert_eq!(show("ok"), "\"ok\"");
    }
}
