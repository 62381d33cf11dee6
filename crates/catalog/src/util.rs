//! Small pieces every store implementation needs the same way.

use std::time::Duration;

use crate::{Error, Result};

/// Runs one store operation under `timeout`, in a `store` tracing span: a frozen server
/// must not hang a backup, so running out of time is [`Error::Timeout`].
pub async fn timed<T>(
    store: &str,
    op: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    use tracing::Instrument;
    let span = tracing::info_span!("store", store = %store, op);
    match tokio::time::timeout(timeout, fut.instrument(span)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            store: store.to_owned(),
            op: op.to_owned(),
            after_ms: timeout.as_millis() as u64,
        }),
    }
}

/// A URL fit for messages and logs: a password becomes `***`.
///
/// ```
/// use bindspace_catalog::redact_url;
/// assert_eq!(redact_url("redis://u:secret@h:6379/0"), "redis://u:***@h:6379/0");
/// assert_eq!(redact_url("postgresql://u@h/db"), "postgresql://u@h/db");
/// ```
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s && url[s + 3..at].contains(':') => {
            let user = url[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
