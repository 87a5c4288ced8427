//! Integration tests of pelagos-pxe through its public API, in pure Rust
//! (the tests that need installed programs or root are the `peers` target,
//! `peers.rs` in this dir).
//!
//! - `catalog`: OS resolution through the catalog, each form.
//! - `install`: add-image's library side: install from a kiwi dir and an
//!   install tar, refusals that change nothing, list/remove/prune.
//! - `records`: boot records: every kind snapshotted, read back, removed;
//!   bad input writes nothing.
//! - `common`: the lab and helpers shared with `peers`.

mod catalog;
mod common;
mod install;
mod records;

pub use common::{install_plain, lab, tftp_with_base, tree};
// pelagos-testkit's synthetic kiwi build, as `crate::kiwi`.
use pelagos_testkit::kiwi;
