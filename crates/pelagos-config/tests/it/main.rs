//! pelagos-config integration tests: config loading and validation, the
//! generated files (snapshots), and the generated files fed to the real
//! programs that read them (dnsmasq, PostgreSQL, a YAML parser).

mod common;
mod dnsmasq;
mod generate;
mod load;
mod postgres;
mod roster;
mod validation;
