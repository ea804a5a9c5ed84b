//! PostgreSQL's binary COPY format for the staging table
//! `(device_id text, metric text, ts timestamptz, value float8)`.

use chrono::{DateTime, Utc};

use crate::ingest::reading::Reading;

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// The file header: signature, flags, header-extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Encodes rows as one binary COPY stream.
pub fn encode<'a>(rows: impl ExactSizeIterator<Item = &'a Reading>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(HEADER.len() + rows.len() * 64 + 2);
    buf.extend_from_slice(HEADER);
    for r in rows {
        buf.extend_from_slice(&4i16.to_be_bytes());
        text(&mut buf, &r.device_id);
        text(&mut buf, &r.metric);
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&pg_micros(r.ts).to_be_bytes());
        buf.extend_from_slice(&8i32.to_be_bytes());
        buf.extend_from_slice(&r.value.to_bits().to_be_bytes());
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

fn text(buf: &mut Vec<u8>, s: &str) {
    let len = i32::try_from(s.len()).expect("ids are at most 128 bytes");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// A timestamp as PostgreSQL stores it: microseconds since 2000-01-01 UTC.
pub fn pg_micros(ts: DateTime<Utc>) -> i64 {
    ts.timestamp_micros() - PG_EPOCH_OFFSET_MICROS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_one_tuple_and_trailer() {
        let r = Reading {
            device_id: "d1".into(),
            metric: "t".into(),
            ts: DateTime::from_timestamp(946_684_800, 1_000).expect("valid"),
            value: 1.5,
        };
        let b = encode([r].iter());
        assert!(b.starts_with(b"PGCOPY\n\xff\r\n\0"));
        let body = &b[HEADER.len()..];
        assert_eq!(&body[..2], &4i16.to_be_bytes());
        assert_eq!(&body[2..6], &2i32.to_be_bytes());
        assert_eq!(&body[6..8], b"d1");
        assert_eq!(&body[8..12], &1i32.to_be_bytes());
        assert_eq!(&body[12..13], b"t");
        assert_eq!(
            &body[17..25],
            &1i64.to_be_bytes(),
            "1 µs after the PostgreSQL epoch"
        );
        assert_eq!(&body[29..37], &1.5f64.to_bits().to_be_bytes());
        assert_eq!(&body[37..], &(-1i16).to_be_bytes());
    }
}
