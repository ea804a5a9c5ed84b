//! Export encoders: rows in, bytes out, a bounded batch at a time (pure, synchronous).
//!
//! CSV: `device_id,metric,ts,value`, times RFC 3339 UTC. Ids never need quoting (the id
//! rule allows no comma, quote or space). Arrow: an IPC stream (schema, record batches,
//! end marker) with `device_id` utf8, `metric` utf8, `ts` timestamp(µs, UTC), `value`
//! float64 — what pandas, polars and DuckDB read directly.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};

/// The CSV header line.
pub const CSV_HEADER: &str = "device_id,metric,ts,value\n";

/// One exported row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Row {
    pub device_id: String,
    pub metric: String,
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// The Arrow schema of an export.
pub fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("value", DataType::Float64, false),
    ]))
}

/// An encoder for one export: `push` rows, `take` whatever is ready, `finish` at the end.
pub enum Encoder {
    Csv(String),
    Arrow(Box<ArrowEncoder>),
}

/// Buffers up to a batch of rows in Arrow builders.
pub struct ArrowEncoder {
    schema: SchemaRef,
    writer: StreamWriter<Vec<u8>>,
    device: StringBuilder,
    metric: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    value: Float64Builder,
    rows: usize,
}

impl Encoder {
    /// A CSV encoder; the header is the first thing `take` returns.
    pub fn csv() -> Encoder {
        Encoder::Csv(CSV_HEADER.to_owned())
    }

    /// An Arrow IPC stream encoder; the schema message is the first thing `take` returns.
    pub fn arrow() -> Result<Encoder, ArrowError> {
        let schema = arrow_schema();
        Ok(Encoder::Arrow(Box::new(ArrowEncoder {
            writer: StreamWriter::try_new(Vec::new(), &schema)?,
            schema,
            device: StringBuilder::new(),
            metric: StringBuilder::new(),
            ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            value: Float64Builder::new(),
            rows: 0,
        })))
    }

    /// Adds a row.
    pub fn push(&mut self, row: &Row) {
        match self {
            Encoder::Csv(out) => {
                let ts = row.ts.to_rfc3339_opts(SecondsFormat::AutoSi, true);
                let _ = writeln!(out, "{},{},{},{}", row.device_id, row.metric, ts, row.value);
            }
            Encoder::Arrow(a) => {
                a.device.append_value(&row.device_id);
                a.metric.append_value(&row.metric);
                a.ts.append_value(row.ts.timestamp_micros());
                a.value.append_value(row.value);
                a.rows += 1;
            }
        }
    }

    /// Rows buffered but not yet encoded into a batch (CSV encodes as it goes: 0).
    pub fn pending_rows(&self) -> usize {
        match self {
            Encoder::Csv(_) => 0,
            Encoder::Arrow(a) => a.rows,
        }
    }

    /// Encodes what is buffered (one record batch for Arrow) and returns the bytes ready.
    pub fn take(&mut self) -> Result<Vec<u8>, ArrowError> {
        match self {
            Encoder::Csv(out) => Ok(std::mem::take(out).into_bytes()),
            Encoder::Arrow(a) => {
                if a.rows > 0 {
                    let columns: Vec<ArrayRef> = vec![
                        Arc::new(a.device.finish()),
                        Arc::new(a.metric.finish()),
                        Arc::new(a.ts.finish()),
                        Arc::new(a.value.finish()),
                    ];
                    let batch = RecordBatch::try_new(a.schema.clone(), columns)?;
                    a.writer.write(&batch)?;
                    a.rows = 0;
                }
                Ok(std::mem::take(a.writer.get_mut()))
            }
        }
    }

    /// The last bytes: any buffered rows, then (Arrow) the end-of-stream marker.
    pub fn finish(mut self) -> Result<Vec<u8>, ArrowError> {
        let mut out = self.take()?;
        if let Encoder::Arrow(a) = &mut self {
            a.writer.finish()?;
            out.extend(std::mem::take(a.writer.get_mut()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray, TimestampMicrosecondArray};
    use arrow_ipc::reader::StreamReader;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row {
                device_id: format!("d-{}", i % 3),
                metric: "temp".into(),
                ts: DateTime::from_timestamp_micros(1_795_000_000_000_000 + i as i64 * 1_001)
                    .unwrap(),
                value: i as f64 / 3.0,
            })
            .collect()
    }

    #[test]
    fn csv_has_the_header_and_one_line_per_row() {
        let mut e = Encoder::csv();
        let all = rows(3);
        for r in &all {
            e.push(r);
        }
        let text = String::from_utf8(e.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "device_id,metric,ts,value");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], "d-1,temp,2026-11-18T11:06:40.001001Z,0.3333333333333333");
    }

    #[test]
    fn arrow_round_trips_in_several_batches() {
        let all = rows(10);
        let mut e = Encoder::arrow().unwrap();
        let mut bytes = e.take().unwrap();
        for chunk in all.chunks(4) {
            for r in chunk {
                e.push(r);
            }
            bytes.extend(e.take().unwrap());
        }
        bytes.extend(e.finish().unwrap());
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let mut back = Vec::new();
        let mut batches = 0;
        for batch in reader {
            let b = batch.unwrap();
            batches += 1;
            let col = |i: usize| b.column(i).clone();
            let d = col(0);
            let d = d.as_any().downcast_ref::<StringArray>().unwrap();
            let m = col(1);
            let m = m.as_any().downcast_ref::<StringArray>().unwrap();
            let t = col(2);
            let t = t.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
            let v = col(3);
            let v = v.as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..b.num_rows() {
                back.push(Row {
                    device_id: d.value(i).into(),
                    metric: m.value(i).into(),
                    ts: DateTime::from_timestamp_micros(t.value(i)).unwrap(),
                    value: v.value(i),
                });
            }
        }
        assert_eq!(batches, 3);
        assert_eq!(back, all);
    }
}
