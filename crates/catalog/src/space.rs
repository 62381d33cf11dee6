//! Space names: which of the spaces kept in one repository a store handle reads and
//! writes (pgBackRest's stanzas).
//!
//! A repository holds the histories of many engines, each under its own name. Every
//! store keeps a space in its own namespace (a directory below `spaces/`, a Redis key
//! prefix with a hash tag, a PostgreSQL schema), so catalogs, leases, listings,
//! retention and verify of one space never see another's. The space `default` is the
//! repository's root: a repository written before spaces existed reads as it.

use std::fmt;

use crate::{Error, Result};

/// The longest space name, in bytes (it must fit a PostgreSQL identifier beside the
/// schema's own name).
pub const SPACE_NAME_MAX: usize = 40;

/// A valid space name: 1 to 40 of `a-z`, `0-9`, `_`, `-`, starting with a letter or
/// digit, so the same name is a path segment, a Redis hash tag and part of a
/// PostgreSQL schema name without quoting or escaping.
///
/// ```
/// use bindspace_catalog::SpaceName;
/// assert!(SpaceName::new("orders-eu_1").is_ok());
/// assert!(SpaceName::new("Orders").is_err());
/// assert!(SpaceName::default().is_default());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpaceName(String);

impl SpaceName {
    /// The name of the repository's root space (everything written before spaces).
    pub const DEFAULT: &'static str = "default";

    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self> {
        let invalid = |why: &str| Error::Invalid {
            store: "space".into(),
            detail: format!(
                "{name:?} is not a space name: {why} (1 to {SPACE_NAME_MAX} of a-z, 0-9, '_' and '-', starting with a letter or digit)"
            ),
        };
        if name.is_empty() || name.len() > SPACE_NAME_MAX {
            return Err(invalid("wrong length"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid("a character outside the allowed set"));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(invalid("it must start with a letter or digit"));
        }
        Ok(SpaceName(name.to_owned()))
    }

    /// Whether this is the root space `default`.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How a store handle on this space is named in messages and catalog locations:
    /// the store's own name for `default` (so names recorded before spaces still
    /// match), `"{store} (space NAME)"` otherwise.
    pub fn store_name(&self, store: &str) -> String {
        if self.is_default() {
            store.to_owned()
        } else {
            format!("{store} (space {})", self.0)
        }
    }
}

impl Default for SpaceName {
    fn default() -> Self {
        SpaceName(Self::DEFAULT.to_owned())
    }
}

impl fmt::Display for SpaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SpaceName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SpaceName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "a", "orders-eu_1", "0abc", &"x".repeat(40)] {
            assert_eq!(SpaceName::new(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "Orders",
            "a b",
            "a/b",
            "{a}",
            "-a",
            "_a",
            "a.b",
            "é",
            &"x".repeat(41),
        ] {
            let e = SpaceName::new(bad).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{bad:?}: {e}");
        }
        assert!(SpaceName::default().is_default());
        assert_eq!(SpaceName::default().store_name("s3://b"), "s3://b");
        assert_eq!(
            SpaceName::new("x").unwrap().store_name("s3://b"),
            "s3://b (space x)"
        );
    }
}
