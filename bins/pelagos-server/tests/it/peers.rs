//! pelagos-server's tests that need installed programs (the `peers` target;
//! `scripts/install-test-deps.sh` installs them, as root):
//!
//! - `auth`: `--htpasswd` on the real binary, with a file made by Apache's
//!   `htpasswd` (apache2-utils): 401 on every closed route, open routes as
//!   before, failed logins logged without the password.
//! - `teuthology`: teuthology's own `pelagos` client (PyPI, in the test
//!   venv) against the server in fast simulation, over HTTP, with
//!   `--htpasswd` and over HTTPS.
//! - `whole_path`: the whole provisioning path in production mode with every
//!   real peer at once (ipmitool and the pyghmi BMC simulator, conmand,
//!   sshd, salt-ssh), grepping all it sees for the passwords.
//! - `common`: the server harness shared with the `it` target (`main.rs`).

mod auth;
#[allow(dead_code)]
mod common;
mod teuthology;
mod whole_path;

pub use common::{Fixture, IMAGE, Server, read, until};
