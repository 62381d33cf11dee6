//! Addresses: 8-bit prefix + 8-bit slot.

use std::fmt;
use std::str::FromStr;

/// Number of addresses in a full BindSpace (8-bit prefix × 8-bit slot).
pub const ADDRESS_SPACE: usize = 1 << 16;

/// One address of a BindSpace: the high byte is the prefix, the low byte the slot.
///
/// Displayed and parsed as `pp:ss` in hex, e.g. `0a:ff`.
///
/// ```
/// use bindspace_core::Addr;
/// let a = Addr::new(0x0a, 0xff);
/// assert_eq!(a.to_string(), "0a:ff");
/// assert_eq!("0a:ff".parse::<Addr>().unwrap(), a);
/// assert_eq!(a.index(), 0x0aff);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Addr(pub u16);

impl Addr {
    /// The address with this prefix and slot.
    pub const fn new(prefix: u8, slot: u8) -> Self {
        Addr(((prefix as u16) << 8) | slot as u16)
    }
    /// The high byte.
    pub const fn prefix(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// The low byte.
    pub const fn slot(self) -> u8 {
        self.0 as u8
    }
    /// Position in a flat arena.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}", self.prefix(), self.slot())
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({self})")
    }
}

impl From<u16> for Addr {
    fn from(v: u16) -> Self {
        Addr(v)
    }
}

/// Error parsing an [`Addr`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: expected `pp:ss` with two hex bytes, e.g. `0a:ff`")]
pub struct ParseAddrError {
    input: String,
}

impl FromStr for Addr {
    type Err = ParseAddrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseAddrError {
            input: s.to_owned(),
        };
        let (p, q) = s.split_once(':').ok_or_else(err)?;
        if p.len() != 2 || q.len() != 2 {
            return Err(err());
        }
        let prefix = u8::from_str_radix(p, 16).map_err(|_| err())?;
        let slot = u8::from_str_radix(q, 16).map_err(|_| err())?;
        Ok(Addr::new(prefix, slot))
    }
}
