//! pelagos-config integration tests in pure Rust: config loading and
//! validation, and the generated files (snapshots). The generated files fed
//! to the real programs that read them are the `peers` target (`peers.rs`
//! in this dir).
//!
//! - `common`: shared fixtures (the demo lab, fixture files, big labs).
//! - `generate`: the generated files: snapshots for the demo lab, template
//!   overrides, the original's conman.conf.tmpl, and what is refused.
//! - `load`: loading lab configs: the original's files, comments, booleans,
//!   lists, and what is warned about.
//! - `roster`: the salt-ssh roster, read back by a YAML parser.
//! - `validation`: one test per validation rule: each problem names the
//!   node and the field; every problem of a lab is reported at once.

mod common;
mod generate;
mod load;
mod roster;
mod validation;
