//! pelagos-config's generated files fed to the real programs that read them
//! (the `peers` target; `scripts/install-test-deps.sh` installs them):
//!
//! - `conman`: the generated CONSOLE lines, read by the real conmand.
//! - `dnsmasq`: the generated dnsmasq file, through `dnsmasq --test`.
//! - `postgres`: the teuthology SQL loaded into a real, throwaway
//!   PostgreSQL with paddles' `nodes` table.
//! - `common`: fixtures shared with the `it` target (`main.rs`).

#[allow(dead_code, unused_imports)]
mod common;
mod conman;
mod dnsmasq;
mod postgres;
