//! A slow network link for tests: a TCP proxy on a free loopback port that forwards to
//! a real server at a fixed rate in either direction, so a test can make a download or
//! an upload long (many seconds) while each request on it stays short.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::servers::ServerResult;

/// A proxy to a server, each direction at its own rate in bytes a second (`None`: not
/// slowed). Stops accepting when dropped; connections open
/// then end when either side closes.
pub struct SlowLink {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl SlowLink {
    /// Starts the proxy to `upstream` (`host:port`): replies at `down`, requests at `up`.
    pub fn start(upstream: &str, down: Option<u64>, up: Option<u64>) -> ServerResult<SlowLink> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| format!("slow link: bind: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("slow link: {e}"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("slow link: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (target, halt) = (upstream.to_owned(), stop.clone());
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(&target) {
                            forward(client, server, down, up);
                        }
                    }
                    Err(_) => pause(Duration::from_millis(5)),
                }
            }
        });
        Ok(SlowLink { port, stop })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A proxy to the server of `url` (`scheme://[user[:password]@]host:port/...`) and
    /// the same URL through it.
    pub fn for_url(
        url: &str,
        down: Option<u64>,
        up: Option<u64>,
    ) -> ServerResult<(SlowLink, String)> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("slow link: {url} is no URL"))?;
        let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (user, host) = match auth.rsplit_once('@') {
            Some((u, h)) => (format!("{u}@"), h),
            None => (String::new(), auth),
        };
        let link = SlowLink::start(host, down, up)?;
        let proxied = format!("{scheme}://{user}127.0.0.1:{}{path}", link.port);
        Ok((link, proxied))
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn forward(client: TcpStream, server: TcpStream, down: Option<u64>, up: Option<u64>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pump(client, server, up));
    std::thread::spawn(move || pump(s2, c2, down));
}

/// Copies `from` to `to`, at `rate` bytes a second when given.
fn pump(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>) {
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(rate) = rate {
            pause(Duration::from_secs_f64(n as f64 / rate.max(1) as f64));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[allow(clippy::disallowed_methods)] // a slow link is wall-clock time by definition
fn pause(d: Duration) {
    std::thread::sleep(d);
}
