//! Seeded workloads for demos, tests and benches. Same seed, same operations, on every
//! machine (the generator is xoshiro256++, whose output is fixed by its definition).

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::{Addr, BindSpace, Fingerprint, Result, SchemaVersion};

/// One operation on a space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Store a fingerprint at an address.
    Write(Addr, Fingerprint),
    /// Empty an address.
    Delete(Addr),
}

impl Op {
    /// Applies the operation, returning the new version.
    pub fn apply(&self, space: &mut BindSpace) -> Result<u64> {
        match self {
            Op::Write(a, fp) => space.write(*a, fp),
            Op::Delete(a) => space.delete(*a).map(|(v, _)| v),
        }
    }
}

/// A seeded stream of writes and deletes over a schema's addresses.
///
/// ```
/// use bindspace_core::{workload::Workload, BindSpace, SchemaVersion};
/// let schema = SchemaVersion::CURRENT.with_words(4);
/// let mut a = BindSpace::new(schema).unwrap();
/// let mut b = BindSpace::new(schema).unwrap();
/// Workload::new(7, schema).run(&mut a, 100).unwrap();
/// Workload::new(7, schema).run(&mut b, 100).unwrap();
/// assert_eq!(a.digest(), b.digest());
/// ```
#[derive(Clone, Debug)]
pub struct Workload {
    rng: Xoshiro256PlusPlus,
    schema: SchemaVersion,
    /// Share of operations that are deletes (0.0–1.0).
    pub delete_ratio: f64,
    /// Share of writes that flip a few words of the existing value rather than
    /// writing a fresh random fingerprint (models small edits; keeps deltas sparse).
    pub small_edit_ratio: f64,
}

impl Workload {
    /// A workload over `schema` seeded by `seed`: 10% deletes, 50% small edits.
    pub fn new(seed: u64, schema: SchemaVersion) -> Self {
        Workload {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            schema,
            delete_ratio: 0.1,
            small_edit_ratio: 0.5,
        }
    }

    /// A random address of the schema.
    pub fn addr(&mut self) -> Addr {
        Addr(self.rng.random_range(0..self.schema.address_space) as u16)
    }

    /// A random fingerprint of the schema's width.
    pub fn fingerprint(&mut self) -> Fingerprint {
        Fingerprint::random(&mut self.rng, self.schema.words())
    }

    /// The next operation, given the space it will apply to (small edits read it).
    pub fn next_op(&mut self, space: &BindSpace) -> Op {
        let addr = self.addr();
        if self.rng.random_bool(self.delete_ratio) {
            return Op::Delete(addr);
        }
        match space.read(addr) {
            Some(old) if self.rng.random_bool(self.small_edit_ratio) => {
                let mut fp = Fingerprint::from_words(old.to_vec());
                let w = self.rng.random_range(0..fp.words());
                fp.words_mut()[w] ^= self.rng.random::<u64>() | 1;
                Op::Write(addr, fp)
            }
            _ => Op::Write(addr, self.fingerprint()),
        }
    }

    /// Applies `n` operations to `space`.
    pub fn run(&mut self, space: &mut BindSpace, n: usize) -> Result<()> {
        for _ in 0..n {
            self.next_op(space).apply(space)?;
        }
        Ok(())
    }

    /// A space with each address occupied with probability `fill`.
    pub fn filled_space(&mut self, fill: f64) -> Result<BindSpace> {
        let mut s = BindSpace::new(self.schema)?;
        for a in 0..self.schema.address_space {
            if fill >= 1.0 || self.rng.random_bool(fill) {
                let fp = self.fingerprint();
                s.write(Addr(a as u16), &fp)?;
            }
        }
        Ok(s)
    }

    /// Changes `words_changed` random words in `count` distinct occupied addresses
    /// (fewer if fewer are occupied). Models the "1% of addresses, one word" case.
    pub fn touch_occupied(
        &mut self,
        space: &mut BindSpace,
        count: usize,
        words_changed: usize,
    ) -> Result<()> {
        let occupied: Vec<Addr> = space.iter().map(|(a, _)| a).collect();
        let mut picked = std::collections::HashSet::new();
        while picked.len() < count.min(occupied.len()) {
            picked.insert(occupied[self.rng.random_range(0..occupied.len())]);
        }
        let mut picked: Vec<_> = picked.into_iter().collect();
        picked.sort();
        for a in picked {
            let mut fp = Fingerprint::from_words(space.read(a).expect("picked occupied").to_vec());
            for _ in 0..words_changed {
                let w = self.rng.random_range(0..fp.words());
                fp.words_mut()[w] ^= self.rng.random::<u64>() | 1;
            }
            space.write(a, &fp)?;
        }
        Ok(())
    }
}
