//! The keyring: a random master key held only wrapped, once per key slot (a
//! passphrase through Argon2id, or a key file), and one data key per epoch wrapped by
//! the master key. Adding or removing a slot re-wraps one key (O(1)); rotating starts
//! a new epoch (older artifacts keep opening); a master-key rotation re-wraps every
//! epoch key.
//!
//! Stored as JSON (`docs/FORMATS.md`, "Keyring") with a blake3 over its body, so a
//! damaged keyring is told apart from a wrong passphrase.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, SEGMENT_LEN};
use crate::{Entropy, Error, Key, Result};

/// The keyring format this build writes and reads.
pub const KEYRING_FORMAT: u32 = 1;
/// Largest keyring accepted (bytes).
const MAX_KEYRING: usize = 1 << 20;
const MAX_SLOTS: usize = 64;
const MAX_EPOCHS: usize = 100_000;
const WRAPPED_LEN: usize = 24 + 32 + 16;

/// What opens a key slot.
#[derive(Clone)]
pub enum SlotSecret {
    /// A passphrase (stretched with Argon2id).
    Passphrase(String),
    /// A key file's contents (64 hex digits, from [`Keyring::new_key_file`]).
    KeyFile(String),
    /// The master key itself as 64 hex digits (from [`Keys::export_master`], kept
    /// offline): opens the keyring without a slot; never a slot of its own.
    MasterKey(String),
}

impl std::fmt::Debug for SlotSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotSecret::Passphrase(_) => "Passphrase(..)",
            SlotSecret::KeyFile(_) => "KeyFile(..)",
            SlotSecret::MasterKey(_) => "MasterKey(..)",
        })
    }
}

impl SlotSecret {
    fn kind(&self) -> &'static str {
        match self {
            SlotSecret::Passphrase(_) => "passphrase",
            SlotSecret::KeyFile(_) => "keyfile",
            SlotSecret::MasterKey(_) => "master",
        }
    }
}

/// Argon2id's costs for a passphrase slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Argon2Cost {
    /// The default: 64 MiB, 3 passes, 1 lane (about a quarter of a second here).
    pub const DEFAULT: Argon2Cost = Argon2Cost {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// Cheap costs for tests and examples only.
    pub const TEST: Argon2Cost = Argon2Cost {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    fn check(self) -> Result<argon2::Params> {
        // a keyring read from a store names its costs: bounded, so a hostile one cannot
        // make an unlock take all memory
        if self.m_kib > 1024 * 1024 || self.t > 64 || self.p > 16 {
            return Err(Error::Refused(format!(
                "Argon2 costs {self:?} are beyond the limits (1 GiB, 64 passes, 16 lanes)"
            )));
        }
        argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| Error::Refused(format!("Argon2 costs {self:?}: {e}")))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSlot {
    id: u32,
    kind: String,
    label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    argon2: Option<Argon2Cost>,
    salt: String,
    wrapped: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredEpoch {
    id: u32,
    created_us: u64,
    /// The data key wrapped by the master key; empty once retired.
    wrapped: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Body {
    format: u32,
    repository_id: String,
    current_epoch: u32,
    slots: Vec<StoredSlot>,
    epochs: Vec<StoredEpoch>,
    /// Changes since creation (slot added or removed, epoch begun or retired, master
    /// key replaced): of two copies of one keyring the higher is the newer. Absent
    /// (0) in a keyring never changed, so format 1's files are unchanged.
    #[serde(default, skip_serializing_if = "is_zero")]
    revision: u64,
    /// Names the master key once it was replaced (`rotate_master`): a keyed hash, so
    /// two copies tell whether their wrapped epoch keys open under the same master
    /// key without opening them. Absent: the master key of creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_id: Option<String>,
}

/// The public name of a master key (16 bytes of a derived hash, hex): reveals
/// nothing of the key.
fn master_id(master: &Key) -> String {
    hex(&blake3::derive_key("bindspace-crypt master id v1", master.bytes())[..16])
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize)]
struct File {
    keyring: Body,
    blake3: String,
}

/// One key slot, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Its id.
    pub id: u32,
    /// `passphrase` or `keyfile`.
    pub kind: String,
    /// What the operator called it.
    pub label: String,
}

/// One key epoch, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochInfo {
    /// Its id (the artifact header's `encryption_key_id`).
    pub id: u32,
    /// When it began (µs since the epoch).
    pub created_us: u64,
    /// New artifacts are sealed with it.
    pub current: bool,
    /// Its key is gone: artifacts still sealed with it cannot be opened.
    pub retired: bool,
}

/// A repository's keyring, locked: what is stored.
#[derive(Clone, Debug)]
pub struct Keyring {
    body: Body,
}

/// The keys of an unlocked keyring: seal and open artifacts.
pub struct Keys {
    repository_id: String,
    master: Key,
    epochs: BTreeMap<u32, Key>,
    current: u32,
    /// The revision of the keyring these keys came from.
    revision: u64,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("repository_id", &self.repository_id)
            .field("epochs", &self.epochs.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str, what: &'static str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(Error::corrupt(what, "not hex"));
    }
    (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::corrupt(what, "not hex"))
        })
        .collect()
}

fn aad(label: &str, repository_id: &str, id: u32) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + repository_id.len());
    a.extend_from_slice(b"bindspace-crypt ");
    a.extend_from_slice(label.as_bytes());
    a.push(0);
    a.extend_from_slice(&(repository_id.len() as u64).to_le_bytes());
    a.extend_from_slice(repository_id.as_bytes());
    a.extend_from_slice(&id.to_le_bytes());
    a
}

/// Wraps `key` with `kek`: a random 24-byte nonce, then the ciphertext and tag.
fn wrap(kek: &Key, key: &Key, aad: &[u8], rng: &mut dyn Entropy) -> Result<String> {
    let mut nonce = [0u8; 24];
    rng.fill(&mut nonce)?;
    let ct = XChaCha20Poly1305::new(kek.bytes().into())
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: key.bytes(),
                aad,
            },
        )
        .map_err(|_| Error::Refused("key wrapping failed".into()))?;
    Ok(hex(&[&nonce[..], &ct].concat()))
}

/// Unwraps; `None` when the key-encryption key is not the one (or the bytes were
/// altered: the keyring's checksum tells which).
fn unwrap_key(kek: &Key, wrapped: &str, aad: &[u8]) -> Result<Option<Key>> {
    let w = unhex(wrapped, "keyring")?;
    if w.len() != WRAPPED_LEN {
        return Err(Error::corrupt(
            "keyring",
            "a wrapped key of the wrong length",
        ));
    }
    let pt = XChaCha20Poly1305::new(kek.bytes().into()).decrypt(
        &XNonce::try_from(&w[..24]).expect("the length was checked"),
        Payload { msg: &w[24..], aad },
    );
    Ok(pt
        .ok()
        .and_then(|p| <[u8; 32]>::try_from(p.as_slice()).ok())
        .map(Key::from_bytes))
}

fn slot_kek(slot: &StoredSlot, secret: &SlotSecret) -> Result<Option<Key>> {
    if slot.kind != secret.kind() {
        return Ok(None);
    }
    let salt = unhex(&slot.salt, "keyring")?;
    let mut out = [0u8; 32];
    match secret {
        SlotSecret::Passphrase(p) => {
            let cost = slot.argon2.ok_or_else(|| {
                Error::corrupt("keyring", "a passphrase slot without Argon2 costs")
            })?;
            argon2::Argon2::new(
                argon2::Algorithm::Argon2id,
                argon2::Version::V0x13,
                cost.check()?,
            )
            .hash_password_into(p.as_bytes(), &salt, &mut out)
            .map_err(|e| Error::Refused(format!("Argon2id: {e}")))?;
        }
        SlotSecret::MasterKey(_) => return Ok(None),
        SlotSecret::KeyFile(text) => {
            let Some(file_key) = Key::from_hex(text.trim()) else {
                return Err(Error::Refused(
                    "a key file holds 64 hex digits (from `bindspace key add --key-file`)".into(),
                ));
            };
            let mut h = blake3::Hasher::new_derive_key("bindspace-crypt key file v1");
            h.update(&salt);
            h.update(file_key.bytes());
            out = *h.finalize().as_bytes();
        }
    }
    Ok(Some(Key::from_bytes(out)))
}

/// A slot `id` opened by `secret`, wrapping `master`.
fn new_slot(
    repository_id: &str,
    id: u32,
    secret: &SlotSecret,
    cost: Argon2Cost,
    label: &str,
    master: &Key,
    rng: &mut dyn Entropy,
) -> Result<StoredSlot> {
    match secret {
        SlotSecret::Passphrase(p) if p.is_empty() => {
            return Err(Error::Refused("an empty passphrase".into()));
        }
        SlotSecret::MasterKey(_) => {
            return Err(Error::Refused(
                "the master key is not a slot's secret: add a passphrase or a key file".into(),
            ));
        }
        _ => {}
    }
    let mut salt = [0u8; 16];
    rng.fill(&mut salt)?;
    let mut slot = StoredSlot {
        id,
        kind: secret.kind().to_owned(),
        label: label.to_owned(),
        argon2: matches!(secret, SlotSecret::Passphrase(_)).then_some(cost),
        salt: hex(&salt),
        wrapped: String::new(),
    };
    let kek = slot_kek(&slot, secret)?.expect("the slot's kind is the secret's");
    slot.wrapped = wrap(&kek, master, &aad("slot", repository_id, id), rng)?;
    Ok(slot)
}

impl Keyring {
    /// A new keyring for repository `repository_id`: a random master key, one slot
    /// opened by `secret`, and epoch 1. Returns it and its keys.
    pub fn create(
        repository_id: &str,
        secret: &SlotSecret,
        cost: Argon2Cost,
        now_us: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(Keyring, Keys)> {
        let master = Key::random(rng)?;
        let mut ring = Keyring {
            body: Body {
                format: KEYRING_FORMAT,
                repository_id: repository_id.to_owned(),
                current_epoch: 0,
                slots: Vec::new(),
                epochs: Vec::new(),
                revision: 0,
                master_id: None,
            },
        };
        let mut keys = Keys {
            repository_id: repository_id.to_owned(),
            master,
            epochs: BTreeMap::new(),
            current: 0,
            revision: 0,
        };
        ring.add_slot(&keys, secret, cost, "first", rng)?;
        ring.rotate(&mut keys, now_us, rng)?;
        ring.body.revision = 0;
        keys.revision = 0;
        Ok((ring, keys))
    }

    /// A new key file's contents: 32 random bytes as hex (keep it like a passphrase).
    pub fn new_key_file(rng: &mut dyn Entropy) -> Result<String> {
        Ok(format!("{}\n", Key::random(rng)?.to_hex()))
    }

    /// The repository this keyring belongs to.
    pub fn repository_id(&self) -> &str {
        &self.body.repository_id
    }

    /// How many times it changed since creation: of two copies of one keyring, the
    /// higher revision is the newer.
    pub fn revision(&self) -> u64 {
        self.body.revision
    }

    /// This keyring, keeping the epoch keys it retired that `older` (an earlier copy
    /// of the same repository's keyring, e.g. a replica's) still holds: for a copy of
    /// the repository that may still hold artifacts sealed under them (a replica keeps
    /// history its source expired, or was not re-sealed). `None` when the two do not
    /// share the master key (its name differs: the master key was replaced, so the
    /// older wrapped keys would not open under the new one) or are not one
    /// repository's.
    pub fn keeping_retired_from(&self, older: &Keyring) -> Option<Keyring> {
        if self.body.repository_id != older.body.repository_id {
            return None;
        }
        if self.body.master_id != older.body.master_id {
            return None;
        }
        let mut out = self.clone();
        for e in out.body.epochs.iter_mut().filter(|e| e.wrapped.is_empty()) {
            if let Some(o) = older
                .body
                .epochs
                .iter()
                .find(|o| o.id == e.id && !o.wrapped.is_empty())
            {
                e.wrapped.clone_from(&o.wrapped);
            }
        }
        Some(out)
    }

    /// The epochs this keyring retired that `older` still holds keys for.
    pub fn retires_from(&self, older: &Keyring) -> Vec<u32> {
        self.body
            .epochs
            .iter()
            .filter(|e| e.wrapped.is_empty())
            .filter(|e| {
                older
                    .body
                    .epochs
                    .iter()
                    .any(|o| o.id == e.id && !o.wrapped.is_empty())
            })
            .map(|e| e.id)
            .collect()
    }

    /// The key slots.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.body
            .slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id,
                kind: s.kind.clone(),
                label: s.label.clone(),
            })
            .collect()
    }

    /// The key epochs, oldest first.
    pub fn epochs(&self) -> Vec<EpochInfo> {
        self.body
            .epochs
            .iter()
            .map(|e| EpochInfo {
                id: e.id,
                created_us: e.created_us,
                current: e.id == self.body.current_epoch,
                retired: e.wrapped.is_empty(),
            })
            .collect()
    }

    /// Opens the keyring with a passphrase or key file: every slot of that kind is
    /// tried. [`Error::WrongKey`] when none opens.
    pub fn unlock(&self, secret: &SlotSecret) -> Result<Keys> {
        if let SlotSecret::MasterKey(hex) = secret {
            return self.unlock_with_master(hex.trim());
        }
        // a malformed slot does not stop the others from being tried
        let mut malformed = None;
        for slot in &self.body.slots {
            let a = aad("slot", &self.body.repository_id, slot.id);
            let opened = slot_kek(slot, secret)
                .and_then(|kek| kek.map_or(Ok(None), |k| unwrap_key(&k, &slot.wrapped, &a)));
            match opened {
                Ok(Some(master)) => return self.keys_with(master, true),
                Ok(None) => {}
                Err(e @ Error::Corrupt { .. }) => malformed = malformed.or(Some(e)),
                Err(e) => return Err(e),
            }
        }
        Err(malformed.unwrap_or(Error::WrongKey))
    }

    /// Opens the keyring with the master key itself (from `bindspace key export`).
    pub fn unlock_with_master(&self, master_hex: &str) -> Result<Keys> {
        let master = Key::from_hex(master_hex).ok_or(Error::WrongKey)?;
        self.keys_with(master, false)
    }

    /// The keys under `master`; `authenticated`: it came out of a slot (its AEAD tag
    /// held), so an epoch key that does not open under it was altered, not mistyped.
    fn keys_with(&self, master: Key, authenticated: bool) -> Result<Keys> {
        let mut epochs = BTreeMap::new();
        for e in self.body.epochs.iter().filter(|e| !e.wrapped.is_empty()) {
            let a = aad("epoch", &self.body.repository_id, e.id);
            let k = unwrap_key(&master, &e.wrapped, &a)?.ok_or_else(|| {
                if authenticated {
                    Error::corrupt(
                        "keyring",
                        format!("epoch {}'s key does not open with the master key a slot holds: the keyring was altered", e.id),
                    )
                } else {
                    // a master key typed in (from `key export`) that opens no epoch
                    Error::WrongKey
                }
            })?;
            epochs.insert(e.id, k);
        }
        Ok(Keys {
            repository_id: self.body.repository_id.clone(),
            master,
            epochs,
            current: self.body.current_epoch,
            revision: self.body.revision,
        })
    }

    /// Adds a slot opened by `secret` (re-wraps the master key once); returns its id.
    pub fn add_slot(
        &mut self,
        keys: &Keys,
        secret: &SlotSecret,
        cost: Argon2Cost,
        label: &str,
        rng: &mut dyn Entropy,
    ) -> Result<u32> {
        if self.body.slots.len() >= MAX_SLOTS {
            return Err(Error::Refused(format!(
                "a keyring holds at most {MAX_SLOTS} slots"
            )));
        }
        let id = self.body.slots.iter().map(|s| s.id).max().unwrap_or(0) + 1;
        let slot = new_slot(
            &self.body.repository_id,
            id,
            secret,
            cost,
            label,
            &keys.master,
            rng,
        )?;
        self.body.slots.push(slot);
        self.body.revision += 1;
        Ok(id)
    }

    /// Removes slot `id`; the last slot cannot go (the repository would be lost).
    pub fn remove_slot(&mut self, id: u32) -> Result<()> {
        let Some(i) = self.body.slots.iter().position(|s| s.id == id) else {
            return Err(Error::Refused(format!("no key slot {id}")));
        };
        if self.body.slots.len() == 1 {
            return Err(Error::Refused(
                "this is the last key slot: add another first (without one nothing opens the repository)".into(),
            ));
        }
        self.body.slots.remove(i);
        self.body.revision += 1;
        Ok(())
    }

    /// Starts a new epoch: a new random data key, from now on the one new artifacts
    /// are sealed with. Older epochs stay (their artifacts keep opening). Returns its id.
    pub fn rotate(&mut self, keys: &mut Keys, now_us: u64, rng: &mut dyn Entropy) -> Result<u32> {
        if self.body.epochs.len() >= MAX_EPOCHS {
            return Err(Error::Refused(format!(
                "a keyring holds at most {MAX_EPOCHS} epochs"
            )));
        }
        let id = self.body.epochs.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        let key = Key::random(rng)?;
        let wrapped = wrap(
            &keys.master,
            &key,
            &aad("epoch", &self.body.repository_id, id),
            rng,
        )?;
        self.body.epochs.push(StoredEpoch {
            id,
            created_us: now_us,
            wrapped,
        });
        self.body.current_epoch = id;
        self.body.revision += 1;
        keys.revision = self.body.revision;
        keys.epochs.insert(id, key);
        keys.current = id;
        Ok(id)
    }

    /// Retires epoch `id`: its key is deleted, so what is still sealed with it no
    /// longer opens. Call it only once every artifact was re-sealed under a newer
    /// epoch. The current epoch cannot be retired.
    pub fn retire(&mut self, keys: &mut Keys, id: u32) -> Result<()> {
        if id == self.body.current_epoch {
            return Err(Error::Refused(format!(
                "epoch {id} is the current one: rotate first"
            )));
        }
        let Some(e) = self.body.epochs.iter_mut().find(|e| e.id == id) else {
            return Err(Error::Refused(format!("no key epoch {id}")));
        };
        e.wrapped.clear();
        self.body.revision += 1;
        keys.revision = self.body.revision;
        keys.epochs.remove(&id);
        Ok(())
    }

    /// A new master key: every epoch key is re-wrapped under it, and the slots are
    /// replaced by one per secret in `keep` (each must open a slot now: a mistyped
    /// passphrase cannot lock the repository). Slots not kept are gone.
    pub fn rotate_master(
        &mut self,
        keys: &mut Keys,
        keep: &[(SlotSecret, String)],
        cost: Argon2Cost,
        rng: &mut dyn Entropy,
    ) -> Result<()> {
        if keep.is_empty() {
            return Err(Error::Refused(
                "a master-key rotation keeps at least one slot".into(),
            ));
        }
        for (secret, _) in keep {
            self.unlock(secret)?;
        }
        let master = Key::random(rng)?;
        let mut next = self.clone();
        for e in next
            .body
            .epochs
            .iter_mut()
            .filter(|e| !e.wrapped.is_empty())
        {
            let key = keys
                .epochs
                .get(&e.id)
                .ok_or_else(|| Error::Refused(format!("the keys lack epoch {}", e.id)))?;
            e.wrapped = wrap(
                &master,
                key,
                &aad("epoch", &next.body.repository_id, e.id),
                rng,
            )?;
        }
        // slot ids are never reused
        let mut id = next.body.slots.iter().map(|s| s.id).max().unwrap_or(0);
        let mut slots = Vec::with_capacity(keep.len());
        for (secret, label) in keep {
            id += 1;
            slots.push(new_slot(
                &next.body.repository_id,
                id,
                secret,
                cost,
                label,
                &master,
                rng,
            )?);
        }
        next.body.slots = slots;
        next.body.revision += 1;
        next.body.master_id = Some(master_id(&master));
        keys.revision = next.body.revision;
        *self = next;
        keys.master = master;
        Ok(())
    }

    /// The stored bytes: JSON with a blake3 over the keyring's body.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&self.body).expect("a keyring serialises");
        let file = File {
            blake3: blake3::hash(&body).to_hex().to_string(),
            keyring: self.body.clone(),
        };
        let mut out = serde_json::to_vec_pretty(&file).expect("a keyring serialises");
        out.push(b'\n');
        out
    }

    /// A stored keyring, checked: size, checksum, format, limits, ids.
    pub fn decode(bytes: &[u8]) -> Result<Keyring> {
        const WHAT: &str = "keyring";
        if bytes.len() > MAX_KEYRING {
            return Err(Error::corrupt(
                WHAT,
                format!("{} bytes, at most {MAX_KEYRING}", bytes.len()),
            ));
        }
        let file: File = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(WHAT, format!("not a keyring: {e}")))?;
        let body = serde_json::to_vec(&file.keyring).expect("a keyring serialises");
        if blake3::hash(&body).to_hex().as_str() != file.blake3 {
            return Err(Error::corrupt(WHAT, "its checksum does not match: damaged"));
        }
        let b = file.keyring;
        if b.format != KEYRING_FORMAT {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "keyring format {}; this build reads {KEYRING_FORMAT}",
                    b.format
                ),
            ));
        }
        if b.slots.is_empty() || b.slots.len() > MAX_SLOTS || b.epochs.len() > MAX_EPOCHS {
            return Err(Error::corrupt(
                WHAT,
                "no slot, or more slots or epochs than allowed",
            ));
        }
        let mut ids: Vec<u32> = b.slots.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut eids: Vec<u32> = b.epochs.iter().map(|e| e.id).collect();
        eids.sort_unstable();
        eids.dedup();
        if ids.len() != b.slots.len() || eids.len() != b.epochs.len() {
            return Err(Error::corrupt(WHAT, "duplicate slot or epoch ids"));
        }
        if !b
            .epochs
            .iter()
            .any(|e| e.id == b.current_epoch && !e.wrapped.is_empty())
        {
            return Err(Error::corrupt(
                WHAT,
                "the current epoch is missing or retired",
            ));
        }
        for s in &b.slots {
            if !matches!(s.kind.as_str(), "passphrase" | "keyfile") {
                return Err(Error::corrupt(
                    WHAT,
                    format!("unknown slot kind {:?}", s.kind),
                ));
            }
        }
        Ok(Keyring { body: b })
    }
}

impl Keys {
    /// The revision of the keyring these keys were opened from (or last changed).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether these keys hold epoch `id` (neither retired nor unknown).
    pub fn has_epoch(&self, id: u32) -> bool {
        self.epochs.contains_key(&id)
    }

    /// The epoch new artifacts are sealed with.
    pub fn current_epoch(&self) -> u32 {
        self.current
    }

    /// The master key as hex, for offline safekeeping (`bindspace key export`): whoever
    /// holds it opens every artifact of the repository.
    pub fn export_master(&self) -> String {
        self.master.to_hex()
    }

    fn context(&self, context: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(context.len() + self.repository_id.len() + 8);
        c.extend_from_slice(&(self.repository_id.len() as u64).to_le_bytes());
        c.extend_from_slice(self.repository_id.as_bytes());
        c.extend_from_slice(context);
        c
    }

    /// Seals `plaintext` under the current epoch, bound to this repository and
    /// `context` (what the artifact is). Deterministic: the nonce prefix is a keyed
    /// blake3 of the context and plaintext (a synthetic IV), so every destination of a
    /// backup stores the same bytes and a writer can tell what a store must hold; a
    /// nonce repeats only for the same artifact with the same contents, which then
    /// seals to the same bytes and reveals nothing new.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal_segmented(context, plaintext, SEGMENT_LEN)
    }

    /// [`Keys::seal`] with segments of `segment_len` bytes (1 KiB ..= 16 MiB).
    pub fn seal_segmented(
        &self,
        context: &[u8],
        plaintext: &[u8],
        segment_len: u32,
    ) -> Result<Vec<u8>> {
        let key = self
            .epochs
            .get(&self.current)
            .ok_or(Error::UnknownEpoch(self.current))?;
        let context = self.context(context);
        let mut h = blake3::Hasher::new_keyed(&blake3::derive_key(
            "bindspace-crypt synthetic nonce v1",
            key.bytes(),
        ));
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(&context);
        h.update(&segment_len.to_le_bytes());
        if plaintext.len() >= 1 << 20 {
            h.update_rayon(plaintext);
        } else {
            h.update(plaintext);
        }
        let mut prefix = [0u8; 19];
        prefix.copy_from_slice(&h.finalize().as_bytes()[..19]);
        let env = Envelope::with_prefix(self.current, segment_len, prefix)?;
        env.seal(key, &context, plaintext)
    }

    /// Opens what [`Keys::seal`] sealed with the same `context`, under whichever epoch
    /// sealed it.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        let env = Envelope::decode(sealed)?;
        let key = self
            .epochs
            .get(&env.epoch)
            .ok_or(Error::UnknownEpoch(env.epoch))?;
        env.open(key, &self.context(context), sealed)
    }

    /// The epoch that sealed `sealed`, from its head.
    pub fn epoch_of(sealed: &[u8]) -> Result<u32> {
        Ok(Envelope::decode(sealed)?.epoch)
    }
}
