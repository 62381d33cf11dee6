//! Addresses as people type them: `0a:01`, `0a01`, `0x0a01` or the decimal `2561`.

use bindspace_core::Addr;

/// Parses an address: `0a:01` (prefix:slot), four hex digits `0a01` or `0x0a01`, or a
/// decimal without a leading zero (`2561`; `0` is address 0).
pub fn parse_addr(s: &str) -> Result<Addr, String> {
    let s = s.trim();
    let hex4 = |h: &str| {
        (h.len() == 4 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u16::from_str_radix(h, 16).ok())
            .flatten()
    };
    if let Some(n) = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .and_then(hex4)
    {
        return Ok(Addr(n));
    }
    if (!s.starts_with('0') || s == "0")
        && let Ok(n) = s.parse::<u16>()
    {
        return Ok(Addr(n));
    }
    if let Some(n) = hex4(s) {
        return Ok(Addr(n));
    }
    s.parse::<Addr>()
        .map_err(|e| format!("address {s:?}: {e} (write 0a:01, 0a01, 0x0a01 or the decimal 2561)"))
}
