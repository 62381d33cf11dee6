//! The one output helper: every command prints either one JSON value (`--json`) or
//! human text, never both, through [`emit`] or [`emit_serialized`].

/// Prints `json` as one line when `as_json`, else what `human` returns (nothing when it
/// returns nothing).
pub fn emit(as_json: bool, json: serde_json::Value, human: impl FnOnce() -> String) {
    if as_json {
        println!("{json}");
    } else {
        print_human(human());
    }
}

/// [`emit`] for a value that serialises itself (a catalog entry, a manifest list): its
/// JSON keeps the struct's field order.
pub fn emit_serialized(
    as_json: bool,
    value: &impl serde::Serialize,
    human: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if as_json {
        println!("{}", serde_json::to_string(value)?);
    } else {
        print_human(human());
    }
    Ok(())
}

fn print_human(text: String) {
    if text.is_empty() {
        return;
    }
    if text.ends_with('\n') {
        print!("{text}");
    } else {
        println!("{text}");
    }
}

/// A size as people read it: `812 B`, `4.2 KB`, `12.3 MB`, `1.4 GB` (powers of 1000,
/// as `du --si` and restic print them).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Now in µs since the epoch, for ages in human output.
pub fn now_us() -> u64 {
    bindspace_core::Clock::now_us(&bindspace_core::SystemClock)
}

/// A time as RFC 3339 with its age: `2025-12-24T15:30:00Z (3 min ago)`; `-` for 0 (not
/// recorded).
pub fn when(us: u64, now_us: u64) -> String {
    if us == 0 {
        return "-".into();
    }
    format!(
        "{} ({})",
        bindspace_http::time::rfc3339(us),
        bindspace_http::time::ago(us, now_us)
    )
}

/// Rows under a header in aligned columns (two spaces apart); the columns in `right`
/// are aligned right (numbers, sizes). Ends with a newline.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, c) in cells.enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            let pad = " ".repeat(w.saturating_sub(c.chars().count()));
            if i > 0 {
                out.push_str("  ");
            }
            if right.contains(&i) {
                out.push_str(&pad);
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&pad);
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut s = line(&mut header.iter().copied());
    for r in rows {
        s.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_people_read() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1000), "1.0 KB");
        assert_eq!(size(4_249), "4.2 KB");
        assert_eq!(size(999_960), "1.0 MB");
        assert_eq!(size(12_345_678), "12.3 MB");
        assert_eq!(size(1_400_000_000), "1.4 GB");
        assert_eq!(size(u64::MAX), "18446744.1 TB");
        let now = 1_766_590_200_000_000; // 2025-12-24T15:30:00Z
        assert_eq!(
            when(now - 180_000_000, now),
            "2025-12-24T15:27:00Z (3 min ago)"
        );
        assert_eq!(when(0, now), "-");
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["id", "size"],
            &[
                vec!["full-1".into(), "1.0 KB".into()],
                vec!["incr-12345".into(), "812 B".into()],
            ],
            &[1],
        );
        assert_eq!(
            t,
            "id            size\nfull-1      1.0 KB\nincr-12345   812 B\n"
        );
    }
}
