#!/usr/bin/env bash
# Install what the test suite drives for real: Debian packages (as root) and a
# Python venv with the test peers (BMC simulator, salt-ssh, teuthology's client,
# Playwright driving Debian's chromium for the dashboard test; never
# `playwright install`: no browser is downloaded).
# Idempotent; safe to re-run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PELAGOS_TEST_VENV:-$root/.venv}

apt_pkgs=(apache2-utils openssl dnsmasq ipmitool conman openssh-server postgresql busybox-static grub-common qemu-system-x86 ipxe-qemu ovmf grub-efi-amd64-bin pxelinux syslinux-common debian-installer-12-netboot-amd64 python3.11 openssh-sftp-server openssh-client iproute2 chromium chromium-driver)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The packages' own services are not wanted: tests start private instances.
for s in dnsmasq conman ssh postgresql; do
    (systemctl stop "$s" && systemctl disable "$s") >/dev/null 2>&1 || true
done

# Exact versions (scripts/requirements-test.txt, the whole dependency closure),
# so an upstream release cannot turn CI red on its own. A venv built from an
# older list is brought to this one.
reqs=$root/scripts/requirements-test.txt
pip_version=26.3
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp=$venv/.pelagos-requirements
if ! cmp -s "$reqs" "$stamp" 2>/dev/null \
    || ! "$venv/bin/python" -c 'import pyghmi, salt, teuthology, yaml, playwright' 2>/dev/null; then
    echo "installing Python test peers into $venv (pinned: $reqs)"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "pip==$pip_version"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$reqs"
    "$venv/bin/python" -m pip check
    cp "$reqs" "$stamp"
fi
echo "test dependencies ready (venv: $venv)"
