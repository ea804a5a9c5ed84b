//! `vigil detect`: the live detector replayed over a CSV file.
//!
//! Input: header `timestamp,value`, one reading per row, timestamps in RFC 3339,
//! `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or unix milliseconds. Output: `timestamp,value,
//! anomaly_score`, the timestamp and value written as they were read. Each file starts
//! from a fresh state and is read once, in order: no look-ahead. The model is fitted
//! inline at the reading where the live task would start its fit (live, it is installed
//! a few readings later, when the fit comes back).

use std::fs::File;
use std::io::{self, IsTerminal as _, Read, Write};
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

use super::series::{Params, SeriesDetector};

/// Inputs larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 4 * 1024 * 1024;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("cannot write the output: {0}")]
    Write(#[source] io::Error),
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub rows: u64,
    /// Readings that started an episode (score at or above the threshold).
    pub events: u64,
}

/// Replays `input` (a path, or `-` for stdin) and writes scores to `output` (stdout when
/// `None`).
pub fn run(
    params: Params,
    input: &Path,
    output: Option<&Path>,
) -> Result<ReplaySummary, ReplayError> {
    let open_err = |p: &Path, source| ReplayError::Open {
        path: p.display().to_string(),
        source,
    };
    let (reader, size): (Box<dyn Read>, u64) = if input == Path::new("-") {
        (Box::new(io::stdin().lock()), 0)
    } else {
        let f = File::open(input).map_err(|e| open_err(input, e))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let writer: Box<dyn Write> = match output {
        Some(p) => Box::new(File::create(p).map_err(|e| open_err(p, e))?),
        None => Box::new(io::stdout().lock()),
    };
    let progress = if size >= PROGRESS_MIN_BYTES && io::stderr().is_terminal() {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} ({eta} left)")
                .expect("the template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = replay(params, reader, writer, &progress);
    progress.finish_and_clear();
    result
}

/// The replay itself, over any reader and writer.
pub fn replay(
    params: Params,
    reader: impl Read,
    writer: impl Write,
    progress: &ProgressBar,
) -> Result<ReplaySummary, ReplayError> {
    let mut csv_in = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let headers = csv_in.headers().map_err(|e| row_error(&e, 1))?.clone();
    let names: Vec<String> = headers.iter().map(str::to_ascii_lowercase).collect();
    if names != ["timestamp", "value"] {
        return Err(ReplayError::Row {
            line: 1,
            message: format!(
                "the header must be `timestamp,value`, not `{}`",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        });
    }
    let mut csv_out = csv::Writer::from_writer(io::BufWriter::with_capacity(1 << 16, writer));
    csv_out
        .write_record(["timestamp", "value", "anomaly_score"])
        .map_err(write_error)?;
    let mut detector = SeriesDetector::new(params);
    let mut summary = ReplaySummary { rows: 0, events: 0 };
    let mut record = csv::StringRecord::new();
    let mut line = 1;
    loop {
        match csv_in.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(row_error(&e, line + 1)),
        }
        line = record.position().map_or(line + 1, |p| p.line());
        let (ts_text, value_text) = (&record[0], &record[1]);
        let ts = parse_time(ts_text).ok_or_else(|| ReplayError::Row {
            line,
            message: format!(
                "timestamp {ts_text:?} is not RFC 3339, `YYYY-MM-DD HH:MM:SS` or unix milliseconds"
            ),
        })?;
        let value = value_text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| ReplayError::Row {
                line,
                message: format!("value {value_text:?} is not a finite number"),
            })?;
        let score = detector.score(ts.timestamp_millis(), value);
        detector.train_if_due();
        summary.rows += 1;
        summary.events += u64::from(score.event.is_some());
        csv_out
            .write_record([ts_text, value_text, &format!("{:.6}", score.score)])
            .map_err(write_error)?;
        if summary.rows % 8192 == 0 {
            progress.set_position(record.position().map_or(0, |p| p.byte()));
        }
    }
    csv_out.flush().map_err(ReplayError::Write)?;
    Ok(summary)
}

/// RFC 3339, `YYYY-MM-DD HH:MM:SS[.fff]` (UTC) or unix milliseconds.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    crate::ingest::parse::parse_timestamp_str(s)
}

fn row_error(e: &csv::Error, fallback_line: u64) -> ReplayError {
    let line = e.position().map_or(fallback_line, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields (timestamp,value), found {len}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
        _ => e.to_string(),
    };
    ReplayError::Row { line, message }
}

fn write_error(e: csv::Error) -> ReplayError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => ReplayError::Write(io),
        other => ReplayError::Write(io::Error::other(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay_str(input: &str) -> Result<(ReplaySummary, String), ReplayError> {
        let mut out = Vec::new();
        let s = replay(
            Params::default(),
            input.as_bytes(),
            &mut out,
            &ProgressBar::hidden(),
        )?;
        Ok((s, String::from_utf8(out).expect("utf-8")))
    }

    #[test]
    fn both_timestamp_spellings_are_read_and_echoed() {
        let input = "timestamp,value\n2026-01-01 00:00:00,1.5\n2026-01-01T00:01:00Z,2\n";
        let (s, out) = replay_str(input).expect("valid");
        assert_eq!(s.rows, 2);
        assert_eq!(
            out,
            "timestamp,value,anomaly_score\n2026-01-01 00:00:00,1.5,0.000000\n\
             2026-01-01T00:01:00Z,2,0.000000\n"
        );
    }

    #[test]
    fn bad_rows_are_reported_with_their_line() {
        let bad_time = "timestamp,value\n2026-01-01 00:00:00,1\nyesterday,2\n";
        let e = replay_str(bad_time).unwrap_err().to_string();
        assert!(e.starts_with("line 3: timestamp \"yesterday\""), "{e}");
        let bad_value = "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,NaN\n";
        let e = replay_str(bad_value).unwrap_err().to_string();
        assert!(e.starts_with("line 3: value \"NaN\""), "{e}");
        let short = "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00\n";
        let e = replay_str(short).unwrap_err().to_string();
        assert!(e.starts_with("line 3: expected 2 fields"), "{e}");
        let e = replay_str("time,v\n").unwrap_err().to_string();
        assert!(e.starts_with("line 1: the header"), "{e}");
    }
}
