//! Node drivers against real peers (`pelagos_testkit::sshd`,
//! `pelagos_testkit::salt`). Run as root (sshd, test users); peers come from
//! `scripts/install-test-deps.sh`.
//!
//! - `readiness`: the SSH readiness probe against OpenSSH's sshd, and
//!   against things that are not SSH (closed ports, silent or wrong banners).
//! - `salt`: salt-ssh (PyPI salt in the test venv) against that sshd: states
//!   applied and failed, timeouts, key deploy, passwords kept out of argv
//!   and logs, plus a stand-in executable for what salt cannot produce on
//!   demand.
//! - `verify`: the OS check (an SSH login reading os-release) against that
//!   sshd, alone and through the engine: this host's OS passes, another
//!   fails naming both, a wrong password fails without leaking it.

mod readiness;
mod salt;
mod verify;
