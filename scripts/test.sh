#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs the real peers the tests
# drive (Debian packages as root, a Python venv with pyghmi, salt and teuthology),
# then runs every test of the workspace, doctests included, `cargo xtask dist`
# (completions and man pages, checked) and the end-to-end reimage of QEMU VMs
# (cargo xtask e2e).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/install-test-deps.sh
export PELAGOS_TEST_VENV=${PELAGOS_TEST_VENV:-$root/.venv}
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi
cargo test --workspace --doc
# Shell completions and man pages from the binaries' clap commands, each
# checked against the binary's --help (target/dist/).
cargo xtask dist --profile dev   # the debug builds the tests made: no release build here
# The whole chain on QEMU VMs in a network namespace (docs/E2E.md): needs
# root, as CI runs. PELAGOS_SKIP_E2E=1 leaves it out of a quick local run.
if [ "${PELAGOS_SKIP_E2E:-0}" != 1 ]; then
    cargo xtask e2e
fi
