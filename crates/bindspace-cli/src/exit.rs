//! Exit codes, from what the error means ([`ErrorKind`]) in one `match`.
//!
//! 0 success; 1 failure (the message says why); 2 bad arguments (clap); 3 busy: another
//! backup holds the repository's lease, or a running engine holds the data directory
//! (a retry after it is done can succeed); 4 the target cannot be restored from what
//! the stores hold; 5 `verify` found damage (or a store it could not check); 6 `verify`
//! found damage and repaired all of it; 7 `dr drill` missed a target or a store could
//! not restore alone; 8 fenced: a standby was promoted over this history, this writer
//! must stop; 9 the passphrase or key file opens no key slot of the encrypted
//! repository.

use bindspace_core::ErrorKind;

/// Exit code: busy (see the module docs).
pub const EXIT_BUSY: u8 = 3;
/// Exit code: the target cannot be restored from what the stores hold.
pub const EXIT_NOT_RESTORABLE: u8 = 4;

/// Exit code: `verify` found damage that remains.
pub const EXIT_DAMAGE: u8 = 5;
/// Exit code: `verify` found damage and repaired all of it.
pub const EXIT_REPAIRED: u8 = 6;

/// Exit code: a restore drill missed a target, or a store could not restore alone.
pub const EXIT_DRILL_FAILED: u8 = 7;

/// Exit code: fenced (a newer writer took over this history).
pub const EXIT_FENCED: u8 = 8;
/// Exit code: the passphrase or key file opens no key slot of the encrypted
/// repository.
pub const EXIT_WRONG_KEY: u8 = 9;

/// A drill that did not pass (the report was printed already).
#[derive(Debug)]
pub struct DrillFailed(pub usize);

impl std::fmt::Display for DrillFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the drill missed {} target(s) (see the report)", self.0)
    }
}

impl std::error::Error for DrillFailed {}

/// A verification that was not clean (the report was printed already).
#[derive(Debug)]
pub struct VerifyOutcome(pub bindspace_dr::Outcome);

impl std::fmt::Display for VerifyOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            bindspace_dr::Outcome::AllRepaired => {
                f.write_str("verify found damage and repaired all of it (see the report)")
            }
            _ => f.write_str("verify found damage (see the report)"),
        }
    }
}

impl std::error::Error for VerifyOutcome {}

/// The kind of the first bindspace error in `e`'s chain.
pub fn kind_of(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<bindspace::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_dr::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_pitr::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_catalog::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_wal::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_schema_migrate::Error>() {
            Some(e.kind())
        } else if let Some(e) = c.downcast_ref::<bindspace_xor_delta::Error>() {
            Some(e.kind())
        } else {
            c.downcast_ref::<bindspace_core::Error>().map(|e| e.kind())
        }
    })
}

/// The exit code for `e`.
pub fn code(e: &anyhow::Error) -> u8 {
    if let Some(VerifyOutcome(o)) = e.downcast_ref::<VerifyOutcome>() {
        return match o {
            bindspace_dr::Outcome::AllRepaired => EXIT_REPAIRED,
            _ => EXIT_DAMAGE,
        };
    }
    if e.downcast_ref::<DrillFailed>().is_some() {
        return EXIT_DRILL_FAILED;
    }
    if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<bindspace::Error>(),
            Some(bindspace::Error::WrongKey(_))
        )
    }) {
        return EXIT_WRONG_KEY;
    }
    match kind_of(e) {
        Some(ErrorKind::Busy) => EXIT_BUSY,
        Some(ErrorKind::NotRestorable) => EXIT_NOT_RESTORABLE,
        Some(ErrorKind::Fenced) => EXIT_FENCED,
        _ => 1,
    }
}
