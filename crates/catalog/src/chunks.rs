//! Artifacts stored in chunks (Redis keys, PostgreSQL rows), put back together and
//! checked the same way by every chunked store: each chunk in order, none missing, no
//! byte past the recorded length, then length and blake3 against the reference.

use bytes::{Bytes, BytesMut};

use crate::{ArtifactRef, Error, Result};

/// Reassembles one artifact from its chunks (see the module docs). Allocation grows
/// with the bytes that arrive: the recorded length is not trusted for it.
#[derive(Debug)]
pub struct ChunkAssembler<'a> {
    store: &'a str,
    r: &'a ArtifactRef,
    chunks: u64,
    next: u64,
    out: BytesMut,
}

impl<'a> ChunkAssembler<'a> {
    /// Expects `chunks` chunks of `r` from the store named `store`.
    pub fn new(store: &'a str, r: &'a ArtifactRef, chunks: u64) -> Self {
        ChunkAssembler {
            store,
            r,
            chunks,
            next: 0,
            out: BytesMut::with_capacity((r.len as usize).min(64 << 20)),
        }
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Corrupt {
            store: self.store.to_owned(),
            artifact: self.r.id,
            detail,
        }
    }

    /// Adds chunk `seq` (`None`: the store has no such chunk).
    pub fn push(&mut self, seq: u64, data: Option<&[u8]>) -> Result<()> {
        let (Some(data), true) = (data, seq == self.next) else {
            return Err(self.corrupt(format!("chunk {} of {} is missing", self.next, self.chunks)));
        };
        if seq >= self.chunks {
            return Err(self.corrupt(format!("chunk {seq} is past the {} recorded", self.chunks)));
        }
        if self.out.len() as u64 + data.len() as u64 > self.r.len {
            return Err(self.corrupt(format!("chunk {seq} overruns {} bytes", self.r.len)));
        }
        self.out.extend_from_slice(data);
        self.next += 1;
        Ok(())
    }

    /// The artifact, once every chunk is in and the bytes match the reference.
    pub fn finish(self) -> Result<Bytes> {
        if self.next != self.chunks {
            return Err(self.corrupt(format!("{} of {} chunks present", self.next, self.chunks)));
        }
        let bytes = self.out.freeze();
        self.r.verify(self.store, &bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArtifactId;

    fn artifact(bytes: &[u8]) -> ArtifactRef {
        ArtifactRef {
            id: ArtifactId::snapshot(1),
            len: bytes.len() as u64,
            blake3: *blake3::hash(bytes).as_bytes(),
        }
    }

    #[test]
    fn chunks_in_order_reassemble_and_verify() {
        let data = b"0123456789";
        let r = artifact(data);
        let mut a = ChunkAssembler::new("s", &r, 3);
        a.push(0, Some(&data[..4])).unwrap();
        a.push(1, Some(&data[4..8])).unwrap();
        a.push(2, Some(&data[8..])).unwrap();
        assert_eq!(&a.finish().unwrap()[..], data);
    }

    #[test]
    fn every_damage_is_corrupt_with_what_is_wrong() {
        let data = b"0123456789";
        let r = artifact(data);
        let detail = |e: Error| match e {
            Error::Corrupt { detail, .. } => detail,
            e => panic!("{e:?}"),
        };
        let mut a = ChunkAssembler::new("s", &r, 3);
        a.push(0, Some(&data[..4])).unwrap();
        assert!(
            detail(a.push(2, Some(&data[8..])).unwrap_err()).contains("chunk 1 of 3 is missing")
        );
        let mut a = ChunkAssembler::new("s", &r, 3);
        assert!(detail(a.push(0, None).unwrap_err()).contains("chunk 0 of 3 is missing"));
        let mut a = ChunkAssembler::new("s", &r, 2);
        a.push(0, Some(&data[..8])).unwrap();
        assert!(detail(a.push(1, Some(&data[..8])).unwrap_err()).contains("overruns"));
        let mut a = ChunkAssembler::new("s", &r, 3);
        a.push(0, Some(&data[..])).unwrap();
        assert!(detail(a.finish().unwrap_err()).contains("1 of 3 chunks present"));
        let mut a = ChunkAssembler::new("s", &r, 1);
        a.push(0, Some(b"0123456780")).unwrap();
        assert!(matches!(a.finish(), Err(Error::Corrupt { .. })));
        let mut a = ChunkAssembler::new("s", &r, 1);
        assert!(detail(a.push(1, Some(b"x")).unwrap_err()).contains("missing"));
    }
}
