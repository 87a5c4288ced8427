#!/bin/busybox sh
# /init of the pelagos e2e installer initrd: what kiwi's PXE install
# initrd does, in busybox sh. Every step goes to the console.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /sysroot
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "pelagos-e2e installer: $*"; }
hang() {
    while :; do sleep 3600; done
}
fail() {
    say "FAILED: $*"
    hang
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /etc/pelagos-installer.conf
say "starting ($IMAGE_NAME installer, kernel $(uname -r))"

say "loading NIC drivers"
while read -r ko; do
    insmod "$ko" 2>/dev/null
done < /etc/modules.load

iface=
i=0
while [ $i -lt 100 ]; do
    for n in /sys/class/net/*; do
        n=${n##*/}
        [ "$n" = lo ] || [ ! -e "/sys/class/net/$n" ] || { iface=$n; break; }
    done
    [ -n "$iface" ] && break
    i=$((i + 1))
    usleep 100000
done
[ -n "$iface" ] || fail "no network interface appeared"
say "network interface $iface"
ifconfig lo 127.0.0.1 up
ifconfig "$iface" up
say "DHCP on $iface"
udhcpc -i "$iface" -s /etc/udhcpc.script -n -q -t 10 -T 2 -A 2 >/dev/null 2>&1 \
    || fail "no DHCP lease on $iface"
addr=$(cat /tmp/dhcp.ip)
say "address $addr on $iface"

url=
for w in $(cat /proc/cmdline); do
    case "$w" in
        rd.kiwi.install.image=*) url=${w#rd.kiwi.install.image=} ;;
    esac
done
[ -n "$url" ] || fail "no rd.kiwi.install.image= on the kernel command line"
say "image url $url"

if [ "$BEHAVIOUR" = hang ]; then
    say "waiting for the image server"
    hang
fi

md5url=${url%.xz}.md5
file=${url##*/}
echo "kiwi: downloading $md5url"
wget -q -O /tmp/image.md5 "$md5url" || fail "cannot download $md5url"
want=$(cut -d' ' -f1 /tmp/image.md5)
echo "kiwi: downloading $url"
# One step after the other: a pipeline costs more than the files under TCG.
wget -q -O /tmp/image.xz "$url" || fail "cannot download $url"
xz -dc /tmp/image.xz > /tmp/disk.raw || fail "cannot decompress $file"
rm -f /tmp/image.xz
got=$(md5sum /tmp/disk.raw)
got=${got%% *}
if [ "$got" != "$want" ]; then
    echo "kiwi: image $file checksum MISMATCH: got $got want $want"
    fail "checksum mismatch"
fi
echo "kiwi: image $file checksum ok $got"
echo "kiwi: dumping $file to the system disk"
mount -t tmpfs -o mode=0755 sysroot /sysroot || fail "cannot mount /sysroot"
tar -x -f /tmp/disk.raw -C /sysroot || fail "cannot unpack the image"
rm -f /tmp/disk.raw
echo "kiwi: dump complete"
[ -s /tmp/dhcp.hostname ] && cp /tmp/dhcp.hostname /sysroot/etc/hostname
[ -s /tmp/resolv.conf ] && cp /tmp/resolv.conf /sysroot/etc/resolv.conf
[ -x /sysroot/sbin/init ] || fail "installed system has no /sbin/init"
read -r up _ < /proc/uptime
say "switching to the installed system (${up}s after kernel start)"
umount /proc /sys
umount -l /dev
exec switch_root /sysroot /sbin/init
