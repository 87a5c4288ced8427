#!/usr/bin/env bash
# Run the README's test command as a machine that never ran it would: a fresh
# clone of HEAD, the test users and their homes removed, no ~/.ssh, no pip or
# salt caches, a new venv and a new cargo target dir. Destructive for this
# machine's test state (it is what the suite recreates); run as root.
#   bash scripts/fresh-machine.sh [clone dir [revision]]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$(mktemp -d /tmp/pelagos-fresh.XXXXXX)}
for u in pelagos-saltpw pelagos-salttgt; do
    if id "$u" >/dev/null 2>&1; then userdel -r -f "$u" 2>/dev/null || userdel -f "$u"; fi
    rm -rf "/home/$u"
done
rm -rf ~/.ssh ~/.cache/pip ~/.cache/salt /var/cache/salt /etc/salt/pki 2>/dev/null || true
# What earlier runs left of the test users and of salt: thins on the "node"
# and the shared thin cache of the whole-path tests.
rm -rf /var/tmp/.pelagos-*_salt /var/tmp/pelagos-thin-* "${TMPDIR:-/tmp}"/pelagos-whole-path-salt-cache
rm -rf "$dest/repo"
git clone -q "$src" "$dest/repo"
if [ -n "${2:-}" ]; then git -C "$dest/repo" checkout -q "$2"; fi
# Nothing outside the clone is used.
unset PELAGOS_TEST_VENV CARGO_TARGET_DIR
cd "$dest/repo"
echo "fresh clone at $dest/repo ($(git rev-parse --short HEAD))"
time bash .ci/run
