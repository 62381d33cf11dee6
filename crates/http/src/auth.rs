//! Bearer tokens: an admin role and a read-only one, read from a token file (or one
//! random admin token written to `DIR/serve.token`), compared in constant time.
//!
//! A token file has one token per line, `admin TOKEN` or `read TOKEN` (`#` starts a
//! comment); a token is at least 16 characters of `[A-Za-z0-9._~+/=-]`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::{Error, Result};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads: status, lists, explain, exports, metrics.
    Read,
    /// Everything, including backups, restores, retention and drills.
    Admin,
}

/// The tokens the server accepts.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<(Role, Vec<u8>)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the tokens themselves
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

/// The file `serve` writes its generated admin token to, in the data directory.
pub const GENERATED_TOKEN_FILE: &str = "serve.token";

impl Tokens {
    /// One admin token.
    pub fn admin(token: &str) -> Tokens {
        Tokens {
            entries: vec![(Role::Admin, token.as_bytes().to_vec())],
        }
    }

    /// Adds a read-only token.
    pub fn with_read(mut self, token: &str) -> Tokens {
        self.entries.push((Role::Read, token.as_bytes().to_vec()));
        self
    }

    /// Parses a token file's text.
    pub fn parse(text: &str) -> Result<Tokens> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| Error::Config(format!("token file line {}: {why}", i + 1));
            let mut parts = line.split_whitespace();
            let (Some(role), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("expected `admin TOKEN` or `read TOKEN`"));
            };
            let role = match role {
                "admin" => Role::Admin,
                "read" => Role::Read,
                other => return Err(bad(&format!("unknown role {other:?} (admin or read)"))),
            };
            if token.len() < 16 || !token.bytes().all(token_byte) {
                return Err(bad(
                    "a token is at least 16 characters of letters, digits and ._~+/=-",
                ));
            }
            entries.push((role, token.as_bytes().to_vec()));
        }
        if entries.is_empty() {
            return Err(Error::Config("the token file holds no token".into()));
        }
        Ok(Tokens { entries })
    }

    /// Reads a token file, which only its owner may read (as ssh holds private keys):
    /// tokens readable by group or others are refused.
    pub fn load(path: &Path) -> Result<Tokens> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(Error::Config(format!(
                    "the token file {} is open to group or others (mode {:o}): `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
        Tokens::parse(&text)
    }

    /// A new random admin token (32 bytes from the OS, hex), written alone to
    /// `dir/serve.token` with mode 0600 (replacing an older one); returns the tokens and
    /// the file.
    pub fn generate(dir: &Path) -> Result<(Tokens, PathBuf)> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)
            .map_err(|e| Error::Config(format!("no randomness for a token: {e}")))?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(GENERATED_TOKEN_FILE);
        let tmp = dir.join(format!("{GENERATED_TOKEN_FILE}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts
            .open(&tmp)
            .map_err(|e| Error::Config(format!("writing {}: {e}", tmp.display())))?;
        f.write_all(format!("{token}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Config(format!("writing {}: {e}", path.display())))?;
        Ok((Tokens::admin(&token), path))
    }

    /// The role of a presented token: every token is compared, in constant time, so
    /// neither which one matched nor how much of one did shows in the time taken.
    pub fn check(&self, presented: &[u8]) -> Option<Role> {
        let mut found = None;
        for (role, token) in &self.entries {
            // ct_eq is constant time for equal lengths; lengths are not secret
            if bool::from(token.as_slice().ct_eq(presented)) {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_and_roles_check() {
        let t = Tokens::parse(
            "# ops\nadmin aaaaaaaaaaaaaaaaaaaa\nread  bbbbbbbbbbbbbbbbbbbb # dashboards\n",
        )
        .expect("valid");
        assert_eq!(t.check(b"aaaaaaaaaaaaaaaaaaaa"), Some(Role::Admin));
        assert_eq!(t.check(b"bbbbbbbbbbbbbbbbbbbb"), Some(Role::Read));
        assert_eq!(t.check(b"aaaaaaaaaaaaaaaaaaab"), None);
        assert_eq!(t.check(b""), None);
        for bad in [
            "",
            "admin",
            "root aaaaaaaaaaaaaaaaaaaa",
            "admin short",
            "admin aaaaaaaaaaaaaaaaaaaa extra",
            "admin aaaaaaaa\"aaaaaaaaaaaa",
        ] {
            let e = Tokens::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), bindspace_core::ErrorKind::Invalid, "{bad}: {e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_generated_token_is_private_and_works() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (t, path) = Tokens::generate(dir.path()).expect("generated");
        let mode = std::fs::metadata(&path)
            .expect("written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(token.trim().len(), 64);
        assert_eq!(t.check(token.trim().as_bytes()), Some(Role::Admin));
        // a second start replaces it: the old one stops working
        let (t2, _) = Tokens::generate(dir.path()).expect("generated");
        assert_eq!(t2.check(token.trim().as_bytes()), None);
    }
}
