//! Encryption at rest for a bindspace repository: a random master key held only
//! wrapped in key slots (a passphrase through Argon2id, or a key file), data keys per
//! epoch wrapped by the master key, and artifacts sealed in independently
//! authenticated segments (XChaCha20-Poly1305 in the STREAM construction) bound to
//! what they are.
//!
//! Nothing here is hand-rolled cryptography: the ciphers, STREAM and Argon2id come from
//! RustCrypto (`chacha20poly1305`, `aead-stream`, `argon2`); this crate decides the key
//! hierarchy, the byte layouts (`docs/FORMATS.md`, "Encryption") and the errors.
//!
//! ```
//! use bindspace_crypt::{Keyring, OsEntropy, SlotSecret};
//! let mut rng = OsEntropy;
//! // a repository's keyring, with one passphrase slot (cheap Argon2 costs for the example)
//! let secret = SlotSecret::Passphrase("correct horse battery staple".into());
//! let (mut ring, keys) =
//!     Keyring::create("repo-1", &secret, bindspace_crypt::Argon2Cost::TEST, 0, &mut rng).unwrap();
//! let sealed = keys.seal(b"artifact identity", b"the payload").unwrap();
//! assert_eq!(keys.open(b"artifact identity", &sealed).unwrap(), b"the payload");
//! // anyone with the passphrase opens the keyring again
//! let bytes = ring.encode();
//! let again = Keyring::decode(&bytes).unwrap().unlock(&secret).unwrap();
//! assert_eq!(again.open(b"artifact identity", &sealed).unwrap(), b"the payload");
//! // a wrong one says so, and is not "corrupt"
//! let wrong = SlotSecret::Passphrase("tr0ub4dor".into());
//! assert!(matches!(ring.unlock(&wrong), Err(bindspace_crypt::Error::WrongKey)));
//! # let _ = &mut ring;
//! ```

mod envelope;
mod error;
mod keyring;
mod secret;

pub use envelope::{ENVELOPE_MAGIC, Envelope, SEGMENT_LEN, is_sealed};
pub use error::{Error, Result};
pub use keyring::{Argon2Cost, EpochInfo, Keyring, Keys, SlotInfo, SlotSecret};
pub use secret::{Entropy, Key, OsEntropy, SeededEntropy};
