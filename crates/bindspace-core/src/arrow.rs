//! The Arrow view of a BindSpace: one row per occupied address,
//! `addr: UInt16, fingerprint: FixedSizeBinary(words × 8)` (little-endian words).
//! Used for Lance and Parquet snapshots.

use std::sync::Arc;

use arrow_array::{Array, FixedSizeBinaryArray, RecordBatch, UInt16Array};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema};

use crate::le::{copy_bytes_to_words, words_as_bytes};
use crate::{Addr, BindSpace, Error, Result, SchemaVersion};

/// Schema metadata key holding the space version.
pub const META_VERSION: &str = "bindspace.version";
/// Schema metadata key holding the schema version as `major.minor.patch`.
pub const META_SCHEMA: &str = "bindspace.schema";
/// Schema metadata key holding the feature bits.
pub const META_FEATURES: &str = "bindspace.features";
/// Schema metadata key holding the address-space size.
pub const META_ADDRESS_SPACE: &str = "bindspace.address_space";

/// The Arrow schema for fingerprints of `words` words (no metadata).
pub fn arrow_schema(words: usize) -> Schema {
    Schema::new(vec![
        Field::new("addr", DataType::UInt16, false),
        Field::new(
            "fingerprint",
            DataType::FixedSizeBinary((words * 8) as i32),
            false,
        ),
    ])
}

fn arrow_err(reason: impl Into<String>) -> Error {
    Error::Arrow {
        reason: reason.into(),
    }
}

impl BindSpace {
    /// One batch holding every occupied address, with the version and schema in the
    /// Arrow schema's metadata.
    ///
    /// ```
    /// use bindspace_core::{Addr, BindSpace, SchemaVersion};
    /// let mut s = BindSpace::new(SchemaVersion::CURRENT.with_words(2)).unwrap();
    /// s.write(Addr::new(3, 4), &[1, 2]).unwrap();
    /// let batch = s.to_record_batch();
    /// assert_eq!(batch.num_rows(), 1);
    /// assert_eq!(BindSpace::from_record_batch(&batch).unwrap(), s);
    /// ```
    pub fn to_record_batch(&self) -> RecordBatch {
        let addrs: UInt16Array = self.iter().map(|(a, _)| a.0).collect();
        let mut bytes = Vec::with_capacity(self.len() * self.words() * 8);
        for (_, words) in self.occupied_runs() {
            bytes.extend_from_slice(&words_as_bytes(words));
        }
        let width = (self.words() * 8) as i32;
        let fps = FixedSizeBinaryArray::new(width, Buffer::from_vec(bytes), None);
        let s = self.schema();
        let meta = [
            (META_VERSION.to_owned(), self.version().to_string()),
            (
                META_SCHEMA.to_owned(),
                format!("{}.{}.{}", s.major, s.minor, s.patch),
            ),
            (META_FEATURES.to_owned(), s.features.to_string()),
            (META_ADDRESS_SPACE.to_owned(), s.address_space.to_string()),
        ]
        .into_iter()
        .collect();
        let schema = Arc::new(arrow_schema(self.words()).with_metadata(meta));
        RecordBatch::try_new(schema, vec![Arc::new(addrs), Arc::new(fps)])
            .expect("columns built to the schema have equal lengths")
    }

    /// The schema a batch describes: its fingerprint width, plus what its metadata
    /// records (defaults of [`SchemaVersion::CURRENT`] where absent).
    pub fn schema_of_batch(batch: &RecordBatch) -> Result<SchemaVersion> {
        let (_, fps) = columns(batch)?;
        let width = fps.value_length() as usize;
        if width == 0 || !width.is_multiple_of(8) {
            return Err(arrow_err(format!(
                "fingerprint width {width} bytes is not a whole number of words"
            )));
        }
        let words = u16::try_from(width / 8)
            .map_err(|_| arrow_err(format!("fingerprint width {width} bytes is too large")))?;
        let meta = batch.schema_ref().metadata();
        let mut schema = SchemaVersion::CURRENT.with_words(words);
        if let Some(v) = meta.get(META_SCHEMA) {
            let parts: Vec<u16> = v.split('.').filter_map(|p| p.parse().ok()).collect();
            if parts.len() != 3 {
                return Err(arrow_err(format!("bad {META_SCHEMA} metadata {v:?}")));
            }
            (schema.major, schema.minor, schema.patch) = (parts[0], parts[1], parts[2]);
        }
        if let Some(v) = meta.get(META_FEATURES) {
            schema.features = v
                .parse()
                .map_err(|_| arrow_err(format!("bad {META_FEATURES} metadata {v:?}")))?;
        }
        if let Some(v) = meta.get(META_ADDRESS_SPACE) {
            schema.address_space = v
                .parse()
                .map_err(|_| arrow_err(format!("bad {META_ADDRESS_SPACE} metadata {v:?}")))?;
        }
        schema.validate()?;
        Ok(schema)
    }

    /// A new space from one batch (see [`BindSpace::to_record_batch`]); the version is
    /// taken from the metadata (0 when absent).
    pub fn from_record_batch(batch: &RecordBatch) -> Result<Self> {
        let mut space = BindSpace::new(Self::schema_of_batch(batch)?)?;
        space.load_record_batch(batch)?;
        let version = match batch.schema_ref().metadata().get(META_VERSION) {
            Some(v) => v
                .parse()
                .map_err(|_| arrow_err(format!("bad {META_VERSION} metadata {v:?}")))?,
            None => 0,
        };
        space.set_version(version);
        Ok(space)
    }

    /// Writes the rows of `batch` into this space (later rows win), without bumping the
    /// version: a restore loads several batches and then sets the version once.
    /// Checks the whole batch before changing anything.
    pub fn load_record_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let (addrs, fps) = columns(batch)?;
        if fps.value_length() as usize != self.words() * 8 {
            return Err(Error::WordCount {
                expected: self.words(),
                found: fps.value_length() as usize / 8,
            });
        }
        if addrs.null_count() > 0 || fps.null_count() > 0 {
            return Err(arrow_err("null addr or fingerprint"));
        }
        if let Some(a) = addrs
            .values()
            .iter()
            .find(|&&a| a as usize >= self.address_space())
        {
            return Err(Error::AddrOutOfRange {
                addr: Addr(*a),
                address_space: self.schema().address_space,
            });
        }
        let version = self.version();
        let mut fp = vec![0u64; self.words()];
        for (i, &a) in addrs.values().iter().enumerate() {
            copy_bytes_to_words(fps.value(i), &mut fp);
            self.write(Addr(a), &fp)?;
        }
        self.set_version(version);
        Ok(())
    }
}

fn columns(batch: &RecordBatch) -> Result<(&UInt16Array, &FixedSizeBinaryArray)> {
    let addrs = batch
        .column_by_name("addr")
        .and_then(|c| c.as_any().downcast_ref::<UInt16Array>())
        .ok_or_else(|| arrow_err("no UInt16 column `addr`"))?;
    let fps = batch
        .column_by_name("fingerprint")
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .ok_or_else(|| arrow_err("no FixedSizeBinary column `fingerprint`"))?;
    Ok((addrs, fps))
}
