//! Pelagos console logs: incremental tailing, meaningful lines, stall detection.
//!
//! conmand (`GLOBAL log="console.%N"`, `%N` = console name = the node's short
//! name) writes each node's serial console to `<log dir>/console.<short name>`.
//! This crate follows such a file the way the provisioning engine needs it:
//!
//! - [`meaningful_line`] turns one raw log line into the text it shows, or
//!   `None` for conman's own `<ConMan>` notices, bare timestamps and blank
//!   lines. Timestamps, CRLF and escape sequences (raw or sanitized) go.
//! - [`ConsoleLog`] reads the file incrementally: only appended bytes, no
//!   subprocess; it survives the file being missing, truncated or rotated.
//! - [`ConsoleWatch`] follows a `ConsoleLog` as its caller polls it (the
//!   provisioning state machine, between SSH probes) and tells, as of the
//!   last poll, whether the console has [`Stalled`] (nothing new for
//!   `max_age`, the lab's `conman_line_max_age`) and whether it has shown
//!   anything since a [`ConsoleMark`] (the new boot after a power cycle).
//!
//! One line at a time, as the dashboard shows consoles:
//!
//! ```
//! use pelagos_conman::meaningful_line;
//!
//! let log = "<ConMan> Console [node1] connected to <10.1.0.1:623>.\r\n\
//!            2026-11-24 16:40:07 \x1b[1mWelcome to openSUSE Leap 15.6\x1b[0m\r\n\
//!            2026-11-24 16:40:08 \r\n\
//!            node1 login: \r\n";
//! let shown: Vec<String> = log.lines().filter_map(meaningful_line).collect();
//! assert_eq!(shown, ["Welcome to openSUSE Leap 15.6", "node1 login:"]);
//! ```
//!
//! Following a node's log through a power cycle:
//!
//! ```
//! use pelagos_conman::{ConsoleWatch, log_path};
//! use std::{io::Write, time::Duration};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = log_path(dir.path(), "node1");
//! assert!(path.ends_with("console.node1"));
//!
//! // The file need not exist yet.
//! let mut watch = ConsoleWatch::open(&path, Duration::from_secs(180))?;
//! // Before the power cycle: what the console shows after this is the new boot.
//! let mark = watch.mark();
//!
//! let mut f = std::fs::File::create(&path)?;
//! f.write_all(b"<ConMan> Console [node1] log opened at 2026-11-24 16:40:07 UTC.\r\n")?;
//! f.write_all(b"2026-11-24 16:40:07 \x1b[1mLoading kernel\x1b[0m\r\n2026-11-24 16:40:08 \r\n")?;
//!
//! let line = watch.poll_now();
//! assert_eq!(line.as_deref(), Some("Loading kernel"));
//! assert!(watch.shown_since(mark));
//!
//! // Nothing more arrives: a stall, 180 s later (paused time here).
//! tokio::time::sleep(Duration::from_secs(180)).await;
//! watch.poll_now();
//! let stalled = watch.stalled().expect("a stall");
//! assert_eq!(stalled.last_line.as_deref(), Some("Loading kernel"));
//! assert!(stalled.age >= Duration::from_secs(180));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod line;
mod log;
mod watch;

#[cfg(test)]
mod test_support;

pub use line::meaningful_line;
pub use log::{ConsoleLog, ConsoleLogError, DEFAULT_TAIL_WINDOW};
pub use watch::{ConsoleMark, ConsoleWatch, Stalled};

use std::path::{Path, PathBuf};

/// Where conmand logs the console of the node with this short name:
/// `<log_dir>/console.<short_name>`, matching make-cfgs' conman.conf
/// (`GLOBAL log="console.%N"`, console name = short name).
pub fn log_path(log_dir: &Path, short_name: &str) -> PathBuf {
    log_dir.join(format!("console.{short_name}"))
}
