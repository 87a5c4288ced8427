#!/bin/bash
# kiwi runs this inside the image root after the packages are installed
# (kiwi-ng ... system build). Keep it idempotent: kiwi may re-run it.
set -euxo pipefail

# kiwi's helper functions (baseInsertService etc.), present in every build root.
test -f /.kconfig && . /.kconfig
test -f /.profile && . /.profile

echo "Configure image: [$kiwi_iname]..."

# Pelagos waits for SSH to answer on the node's provisioning address, then
# runs salt-ssh as root: sshd must start on boot and accept root.
systemctl enable sshd
# (root/etc/ssh/sshd_config.d/pelagos.conf sets PermitRootLogin.)

# DHCP on every wired NIC: node addresses come from the lab's dnsmasq
# (make-cfgs writes its dhcp-host lines), names stay eth0.. (net.ifnames=0).
cat > /etc/sysconfig/network/ifcfg-eth0 <<'IFCFG'
BOOTPROTO='dhcp'
STARTMODE='auto'
IFCFG
systemctl enable wicked

# A login prompt on the serial console conman logs (ttyS1, 115200), so the
# console log keeps moving while the system boots (Pelagos' stall watch).
systemctl enable serial-getty@ttyS1.service

# No firewall on a test node; Ceph opens many ports.
systemctl disable firewalld 2>/dev/null || true

# Time matters for Ceph.
systemctl enable chronyd

# Smaller image: no docs, no zypper caches.
rm -rf /usr/share/doc/packages/* /var/cache/zypp/*

exit 0
