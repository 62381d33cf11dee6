//! The export formats: one row per occupied address (addr, prefix, slot, fingerprint)
//! as JSON, NDJSON, CSV or Parquet, written to any `Write` in constant memory (rows
//! stream out; Parquet buffers one row group of [`PARQUET_ROW_GROUP`] rows).
//!
//! A fingerprint is its words as little-endian bytes: hex in the text formats (the
//! same bytes as the Parquet `FixedSizeBinary` column). The state's version, timeline,
//! digest and address count go in each file's metadata: the JSON object's fields, the
//! NDJSON's first line, the CSV's first line (a `#` comment before the header), the
//! Parquet file's key-value metadata (`bindspace.version`, …).

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, UInt8Builder, UInt16Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bindspace_core::{Addr, BindSpace};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result};

/// Rows per Parquet row group (what the writer holds in memory at once).
pub const PARQUET_ROW_GROUP: usize = 2_048;

/// An export format.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object: the metadata and a `rows` array.
    Json,
    /// A metadata line, then one JSON object per line.
    Ndjson,
    /// A `#` metadata line, a header, then one row per line.
    Csv,
    /// Apache Parquet, the fingerprint as `FixedSizeBinary(words × 8)`.
    Parquet,
}

impl Format {
    /// All formats, as named on the command line and in the API.
    pub const ALL: [Format; 4] = [Format::Json, Format::Ndjson, Format::Csv, Format::Parquet];

    /// Its name (`json`, `ndjson`, `csv`, `parquet`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// The format named `s`.
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Its media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv",
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// What the file says about the state it holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    /// The state's version.
    pub version: u64,
    /// Its timeline.
    pub timeline: u32,
    /// Its digest (`BindSpace::digest`).
    pub digest: String,
    /// Occupied addresses (the number of rows).
    pub addresses: u64,
    /// Words per fingerprint.
    pub words: u16,
}

impl Meta {
    /// The metadata of `space` on `timeline`.
    pub fn of(space: &BindSpace, timeline: u32) -> Meta {
        Meta {
            version: space.version(),
            timeline,
            digest: space.digest().to_string(),
            addresses: space.len() as u64,
            words: space.schema().fingerprint_words,
        }
    }
}

/// A fingerprint as hex of its little-endian bytes.
pub fn fingerprint_hex(words: &[u64]) -> String {
    let mut s = String::with_capacity(words.len() * 16);
    for w in words {
        for b in w.to_le_bytes() {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `space` as `format` to `out`; returns the rows written.
pub fn write(
    space: &BindSpace,
    meta: &Meta,
    format: Format,
    out: impl Write + Send,
) -> Result<u64> {
    let mut out = out;
    let rows = match format {
        Format::Json => write_json(space, meta, &mut out)?,
        Format::Ndjson => write_ndjson(space, meta, &mut out)?,
        Format::Csv => write_csv(space, meta, &mut out)?,
        Format::Parquet => return write_parquet(space, meta, out),
    };
    out.flush().map_err(io)?;
    Ok(rows)
}

fn io(e: std::io::Error) -> Error {
    Error::Export(e.to_string())
}

#[derive(serde::Serialize)]
struct Row<'a> {
    addr: String,
    prefix: u8,
    slot: u8,
    fingerprint: &'a str,
}

fn row(addr: Addr, hex: &str) -> Row<'_> {
    Row {
        addr: addr.to_string(),
        prefix: addr.prefix(),
        slot: addr.slot(),
        fingerprint: hex,
    }
}

fn write_json(space: &BindSpace, meta: &Meta, out: &mut dyn Write) -> Result<u64> {
    // the metadata first, then the rows one at a time (never the whole array in memory)
    let head = serde_json::to_string(meta).map_err(|e| Error::Export(e.to_string()))?;
    let head = head.strip_suffix('}').expect("an object ends with }");
    write!(out, "{head},\"rows\":[").map_err(io)?;
    let mut n = 0u64;
    for (addr, words) in space.iter() {
        if n > 0 {
            out.write_all(b",").map_err(io)?;
        }
        serde_json::to_writer(&mut *out, &row(addr, &fingerprint_hex(words)))
            .map_err(|e| Error::Export(e.to_string()))?;
        n += 1;
    }
    out.write_all(b"]}\n").map_err(io)?;
    Ok(n)
}

fn write_ndjson(space: &BindSpace, meta: &Meta, out: &mut dyn Write) -> Result<u64> {
    #[derive(serde::Serialize)]
    struct Head<'a> {
        bindspace_export: &'a Meta,
    }
    serde_json::to_writer(
        &mut *out,
        &Head {
            bindspace_export: meta,
        },
    )
    .map_err(|e| Error::Export(e.to_string()))?;
    out.write_all(b"\n").map_err(io)?;
    let mut n = 0u64;
    for (addr, words) in space.iter() {
        serde_json::to_writer(&mut *out, &row(addr, &fingerprint_hex(words)))
            .map_err(|e| Error::Export(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
        n += 1;
    }
    Ok(n)
}

fn write_csv(space: &BindSpace, meta: &Meta, out: &mut dyn Write) -> Result<u64> {
    writeln!(
        out,
        "# bindspace export version={} timeline={} digest={} addresses={} words={}",
        meta.version, meta.timeline, meta.digest, meta.addresses, meta.words
    )
    .map_err(io)?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["addr", "prefix", "slot", "fingerprint"])
        .map_err(|e| Error::Export(e.to_string()))?;
    let mut n = 0u64;
    for (addr, words) in space.iter() {
        let hex = fingerprint_hex(words);
        let r = row(addr, &hex);
        w.write_record([
            r.addr.as_str(),
            &r.prefix.to_string(),
            &r.slot.to_string(),
            r.fingerprint,
        ])
        .map_err(|e| Error::Export(e.to_string()))?;
        n += 1;
    }
    w.flush().map_err(io)?;
    Ok(n)
}

/// The Parquet schema of an export of `words`-word fingerprints.
pub fn parquet_schema(words: u16) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("addr", DataType::UInt16, false),
        Field::new("prefix", DataType::UInt8, false),
        Field::new("slot", DataType::UInt8, false),
        Field::new(
            "fingerprint",
            DataType::FixedSizeBinary(i32::from(words) * 8),
            false,
        ),
    ]))
}

fn write_parquet(space: &BindSpace, meta: &Meta, out: impl Write + Send) -> Result<u64> {
    let pq = |e: parquet::errors::ParquetError| Error::Export(e.to_string());
    let schema = parquet_schema(meta.words);
    let kv = |k: &str, v: String| KeyValue::new(format!("bindspace.{k}"), v);
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
        .set_key_value_metadata(Some(vec![
            kv("version", meta.version.to_string()),
            kv("timeline", meta.timeline.to_string()),
            kv("digest", meta.digest.clone()),
            kv("addresses", meta.addresses.to_string()),
            kv("words", meta.words.to_string()),
        ]))
        .build();
    let mut w = ArrowWriter::try_new(out, schema.clone(), Some(props)).map_err(pq)?;
    let width = i32::from(meta.words) * 8;
    let mut rows = space.iter().peekable();
    let mut n = 0u64;
    let mut bytes = Vec::with_capacity(width as usize);
    while rows.peek().is_some() {
        let mut addr = UInt16Builder::with_capacity(PARQUET_ROW_GROUP);
        let mut prefix = UInt8Builder::with_capacity(PARQUET_ROW_GROUP);
        let mut slot = UInt8Builder::with_capacity(PARQUET_ROW_GROUP);
        let mut fp = FixedSizeBinaryBuilder::with_capacity(PARQUET_ROW_GROUP, width);
        for (a, words) in rows.by_ref().take(PARQUET_ROW_GROUP) {
            addr.append_value(a.0);
            prefix.append_value(a.prefix());
            slot.append_value(a.slot());
            bytes.clear();
            bytes.extend(words.iter().flat_map(|w| w.to_le_bytes()));
            fp.append_value(&bytes)
                .map_err(|e| Error::Export(e.to_string()))?;
            n += 1;
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(addr.finish()),
            Arc::new(prefix.finish()),
            Arc::new(slot.finish()),
            Arc::new(fp.finish()),
        ];
        let batch =
            RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::Export(e.to_string()))?;
        w.write(&batch).map_err(pq)?;
        // one row group at a time in memory
        w.flush().map_err(pq)?;
    }
    w.close().map_err(pq)?;
    Ok(n)
}
