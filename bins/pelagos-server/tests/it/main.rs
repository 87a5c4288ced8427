//! pelagos-server driven over HTTP: the real binary on an ephemeral loopback
//! port, a fast simulated lab, every compatible route and failure code. No
//! program but the server is needed (the tests that need installed
//! programs are the `peers` target, `peers.rs` in this dir).
//!
//! - `api_v1`: the versioned API (`/api/v1/...`): each route and its
//!   refusals, the OpenAPI document, credentials under `--htpasswd`.
//! - `common`: the harness shared with `peers`: fixture lab, server, polling.
//! - `demo`: `--demo` starts on the bundled lab with its own dirs and provisions.
//! - `exposure`: the start-up warning of a server reachable from the network
//!   without authentication, and the loopback default of `--demo`.
//! - `failures`: each failure class of the simulated lab ends with its own
//!   code; the status routes keep answering.
//! - `hostile`: hostile input over raw sockets: traversal and encodings,
//!   hostile form fields, oversized and malformed requests, bad framing,
//!   `Host` headers and methods.
//! - `images`: the image tree over HTTP: exact bytes, HEAD, Range, 404s,
//!   traversal and symlink escapes refused, the boot record's image URL.
//! - `installable`: production refuses an image dir without kernel, initrd
//!   or disk image (404, no task, no record); simulation provisions it.
//! - `kiwi_e2e`: a kiwi-shaped build through the real `add-image install`,
//!   resolved, provisioned and served by the server.
//! - `metrics`: `/metrics` scraped and parsed after provisions of each
//!   outcome (counters, stage and BMC histograms, requests by route
//!   template, bounded labels), behind `--htpasswd`; `--log-format json`.
//! - `notify`: systemd's notify protocol: READY=1 once listening, WATCHDOG=1
//!   at half of WATCHDOG_USEC, RELOADING=1/READY=1 around SIGHUP,
//!   STOPPING=1; nothing without NOTIFY_SOCKET or for another WATCHDOG_PID.
//! - `race`: per-node exclusivity under load.
//! - `reload`: the lab config reloaded (POST /api/v1/reload, SIGHUP) while
//!   provisions run; a file that does not load keeps the old lab; a node
//!   with problems of its own is disabled, not the lab.
//! - `restart`: task state survives a crash of the server.
//! - `routes`: every compatible route, its fields, codes and headers.
//! - `secrets`: the lab's passwords never reach an answer, a task log or
//!   the state directory.
//! - `wire`: the compatible answers byte for byte (one snapshot).

mod api_v1;
mod common;
mod demo;
mod exposure;
mod failures;
mod hostile;
mod images;
mod installable;
mod kiwi_e2e;
mod metrics;
mod notify;
mod race;
mod reload;
mod restart;
mod routes;
mod secrets;
mod wire;

pub use common::{Fixture, IMAGE, KillOnDrop, LAB, Server, read, until};
// pelagos-testkit's synthetic kiwi build, as `crate::kiwi`.
use pelagos_testkit::kiwi;
