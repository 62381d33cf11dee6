//! Exit codes, from what the error means ([`ErrorKind`]) in one `match`.
//!
//! 0 success; 1 failure (the message says why); 2 bad arguments (clap); 3 busy: another
//! backup holds the repository's lease, or a running engine holds the data directory
//! (a retry after it is done can succeed); 4 the target cannot be restored from what
//! the stores hold.

use bindspace_core::ErrorKind;

/// Exit code: busy (see the module docs).
pub const EXIT_BUSY: u8 = 3;
/// Exit code: the target cannot be restored from what the stores hold.
pub const EXIT_NOT_RESTORABLE: u8 = 4;

/// The kind of the first bindspace error in `e`'s chain.
pub fn kind_of(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain().find_map(|c| {
        if let Some(e) = c.downcast_ref::<bindspace::Error>() {
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
    match kind_of(e) {
        Some(ErrorKind::Busy) => EXIT_BUSY,
        Some(ErrorKind::NotRestorable) => EXIT_NOT_RESTORABLE,
        _ => 1,
    }
}
