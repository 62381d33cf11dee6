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
