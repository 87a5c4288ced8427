#!/usr/bin/env bash
# Install what the test suite drives for real: Debian packages (as root) and a
# Python venv with the test peers (BMC simulator, salt-ssh, teuthology's client).
# Idempotent; safe to re-run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PELAGOS_TEST_VENV:-$root/.venv}

apt_pkgs=(apache2-utils openssl dnsmasq ipmitool conman openssh-server postgresql busybox-static grub-common qemu-system-x86 ipxe-qemu ovmf grub-efi-amd64-bin pxelinux syslinux-common debian-installer-12-netboot-amd64)
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

py_pkgs=(pyghmi salt teuthology PyYAML)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import pyghmi, salt, teuthology, yaml' 2>/dev/null; then
    echo "installing Python test peers into $venv: ${py_pkgs[*]}"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "${py_pkgs[@]}"
fi
echo "test dependencies ready (venv: $venv)"
