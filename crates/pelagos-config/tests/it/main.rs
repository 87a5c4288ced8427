//! pelagos-config integration tests: config loading and validation, the
//! generated files (snapshots), and the generated files fed to the real
//! programs that read them (dnsmasq, conmand, PostgreSQL, a YAML parser).

mod common;
mod conman;
mod dnsmasq;
mod generate;
mod load;
mod postgres;
mod roster;
mod validation;
