//! The stores a restore reads ([`Sources`]) and what they hold, merged ([`Inventory`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use bindspace_catalog::{ArtifactKind, ArtifactRef, BackupStore, Manifest};

/// The stores a restore plans from and fetches from, in priority order. A
/// [`RestorePlan`](crate::RestorePlan) owns the `Sources` it was planned from, so it
/// always runs against the same stores. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sources {
    stores: Arc<[Arc<dyn BackupStore>]>,
}

impl Sources {
    /// The stores, primary first.
    pub fn new(stores: Vec<Arc<dyn BackupStore>>) -> Sources {
        Sources {
            stores: stores.into(),
        }
    }

    /// The stores, in priority order.
    pub fn stores(&self) -> &[Arc<dyn BackupStore>] {
        &self.stores
    }

    /// Their names, in priority order.
    pub fn names(&self) -> Vec<String> {
        self.stores.iter().map(|s| s.name()).collect()
    }

    pub(crate) fn get(&self, i: usize) -> &Arc<dyn BackupStore> {
        &self.stores[i]
    }
}

impl PartialEq for Sources {
    /// The same stores, by identity.
    fn eq(&self, other: &Sources) -> bool {
        self.stores.len() == other.stores.len()
            && self
                .stores
                .iter()
                .zip(other.stores.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for Sources {}

impl From<Vec<Arc<dyn BackupStore>>> for Sources {
    fn from(v: Vec<Arc<dyn BackupStore>>) -> Sources {
        Sources::new(v)
    }
}

impl From<&[Arc<dyn BackupStore>]> for Sources {
    fn from(v: &[Arc<dyn BackupStore>]) -> Sources {
        Sources::new(v.to_vec())
    }
}

impl From<&Vec<Arc<dyn BackupStore>>> for Sources {
    fn from(v: &Vec<Arc<dyn BackupStore>>) -> Sources {
        Sources::new(v.clone())
    }
}

impl From<&Sources> for Sources {
    fn from(s: &Sources) -> Sources {
        s.clone()
    }
}

/// What an inventory lists.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Listing {
    /// Every artifact of every kind.
    All,
    /// The WAL segments of one history from a first version on (a follower's step).
    WalSince {
        timeline: bindspace_catalog::TimelineId,
        first: u64,
    },
}

/// Everything the stores hold, merged.
pub(crate) struct Inventory {
    /// artifact → indices of the stores holding it, in priority order
    pub artifacts: BTreeMap<ArtifactRef, Vec<usize>>,
    /// each listable store's catalog
    pub manifests: Vec<Manifest>,
    /// stores that could not be listed, with why
    pub unavailable: Vec<String>,
    /// how many stores could not be listed at all (a catalog alone unreadable is not
    /// counted), and whether any of those failures might pass (down or slow, not
    /// refusing)
    pub unlisted: usize,
    /// see `unlisted`
    pub unavailable_retryable: bool,
    /// a catalog of a layout this build does not know: nothing may be planned from
    /// what that repository holds
    pub unknown_layout: Option<String>,
}

impl Inventory {
    /// Lists every store (each artifact kind, then its catalog). A store that fails to
    /// list is reported in `unavailable` and contributes nothing.
    pub async fn take(sources: &Sources) -> Inventory {
        Inventory::take_listing(sources, Listing::All).await
    }

    /// Lists what `listing` asks of every store (then its catalog), as [`Inventory::take`].
    pub async fn take_listing(sources: &Sources, listing: Listing) -> Inventory {
        let mut inv = Inventory {
            artifacts: BTreeMap::new(),
            manifests: Vec::new(),
            unavailable: Vec::new(),
            unlisted: 0,
            unavailable_retryable: false,
            unknown_layout: None,
        };
        for (i, s) in sources.stores().iter().enumerate() {
            let mut listed = Vec::new();
            let mut failed = None;
            match listing {
                Listing::All => {
                    for kind in ArtifactKind::ALL {
                        match s.list(kind, 0, u64::MAX).await {
                            Ok(v) => listed.extend(v),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                }
                Listing::WalSince { timeline, first } => {
                    match s
                        .list_since(ArtifactKind::WalSegment, timeline, first)
                        .await
                    {
                        Ok(v) => listed.extend(v),
                        Err(e) => failed = Some(e),
                    }
                }
            }
            if let Some(e) = failed {
                tracing::warn!(store = %s.name(), error = %e, "store unavailable for restore");
                inv.unavailable.push(format!("{}: {e}", s.name()));
                inv.unavailable_retryable |= e.is_retryable();
                inv.unlisted += 1;
                continue;
            }
            for r in listed {
                inv.artifacts.entry(r).or_default().push(i);
            }
            // past a damaged newest generation to the newest intact one (warned)
            match bindspace_catalog::read_catalog(s.as_ref()).await {
                Ok(Some(r)) => inv.manifests.push(r.manifest),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(store = %s.name(), error = %e, "catalog unreadable for restore");
                    if matches!(e, bindspace_catalog::Error::UnknownLayout { .. }) {
                        inv.unknown_layout = Some(format!("{}: {e}", s.name()));
                    }
                    inv.unavailable
                        .push(format!("{} (its catalog): {e}", s.name()));
                }
            }
        }
        inv.prefer_recorded_copies();
        inv
    }

    /// Drops a store's copy of an artifact whose bytes differ from what the catalogs
    /// recorded for it (its blake3), when another store holds a copy that matches: a
    /// copy altered behind the catalog's back is never the one a restore picks while a
    /// good one exists. Where the catalogs disagree, or no copy matches, all stay (the
    /// state roots decide).
    fn prefer_recorded_copies(&mut self) {
        use std::collections::BTreeSet;
        let mut recorded: BTreeMap<bindspace_catalog::ArtifactId, BTreeSet<&str>> = BTreeMap::new();
        for e in self.manifests.iter().flat_map(|m| &m.entries) {
            recorded
                .entry(e.artifact)
                .or_default()
                .insert(e.blake3.as_str());
        }
        let matches = |r: &ArtifactRef| {
            recorded.get(&r.id).is_some_and(|set| {
                set.len() == 1 && set.contains(bindspace_catalog::blake3_hex(&r.blake3).as_str())
            })
        };
        let good: BTreeSet<bindspace_catalog::ArtifactId> = self
            .artifacts
            .keys()
            .filter(|r| matches(r))
            .map(|r| r.id)
            .collect();
        let before = self.artifacts.len();
        self.artifacts
            .retain(|r, _| !good.contains(&r.id) || matches(r));
        if self.artifacts.len() < before {
            tracing::warn!(
                dropped = before - self.artifacts.len(),
                "copies whose bytes differ from what the catalog recorded are not used"
            );
        }
    }

    /// The artifacts of one kind, with the stores holding each.
    pub fn of_kind(
        &self,
        k: ArtifactKind,
    ) -> impl Iterator<Item = (&ArtifactRef, &Vec<usize>)> + '_ {
        self.artifacts.iter().filter(move |(r, _)| r.id.kind() == k)
    }
}
