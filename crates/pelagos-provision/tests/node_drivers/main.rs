//! Node drivers against real peers: readiness probes against OpenSSH's sshd,
//! salt-ssh (PyPI salt in the test venv) against that sshd. Run as root
//! (sshd, test users); peers come from `scripts/install-test-deps.sh`.

mod readiness;
mod salt;
mod support;
