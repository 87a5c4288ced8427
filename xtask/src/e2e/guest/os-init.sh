#!/bin/sh
# /sbin/init of the pelagos e2e OS: mounts, network, hostname, sshd.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 shm /dev/shm 2>/dev/null
. /etc/os-release
say() { echo "pelagos-e2e os: $*"; }
say "starting $PRETTY_NAME (image $(cat /etc/ImageID))"
[ -s /etc/hostname ] && hostname -F /etc/hostname
ifconfig lo 127.0.0.1 up

addr() {
    ip -4 -o addr show scope global 2>/dev/null | sed -n 's/.* inet \([0-9.]*\).*/\1/p' | head -n 1
}
a=$(addr)
if [ -z "$a" ]; then
    for n in /sys/class/net/*; do
        n=${n##*/}
        [ "$n" = lo ] && continue
        say "DHCP on $n"
        ifconfig "$n" up
        udhcpc -i "$n" -s /etc/udhcpc.script -n -q -t 10 -T 2 -A 2 >/dev/null 2>&1 && break
    done
    [ -s /tmp/dhcp.hostname ] && hostname -F /tmp/dhcp.hostname
    [ -s /tmp/resolv.conf ] && cp /tmp/resolv.conf /etc/resolv.conf
    a=$(addr)
fi
ldconfig
mkdir -p /run/sshd /var/log
/usr/sbin/sshd -E /var/log/sshd.log || say "sshd failed to start"
read -r up _ < /proc/uptime
say "sshd started ${up}s after kernel start"
echo "$PRETTY_NAME ready: ssh on ${a:-no-address}"
console=ttyS0
for w in $(cat /proc/cmdline); do
    case "$w" in
        console=*) c=${w#console=}; console=${c%%,*} ;;
    esac
done
if [ -c "/dev/$console" ]; then
    echo "::respawn:/sbin/getty -L 115200 $console vt100" > /etc/inittab
else
    echo "$(hostname) login:"
    : > /etc/inittab
fi
echo "::ctrlaltdel:/sbin/reboot" >> /etc/inittab
exec /bin/busybox init
