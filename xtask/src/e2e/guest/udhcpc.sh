#!/bin/sh
# udhcpc script: set the address and the default route (when given).
case "$1" in
    deconfig)
        ifconfig "$interface" 0.0.0.0 up
        ;;
    bound|renew)
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}" up
        if [ -n "$router" ]; then
            while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
            for r in $router; do
                route add default gw "$r" dev "$interface"
                break
            done
        fi
        echo "$ip" > /tmp/dhcp.ip
        [ -n "$hostname" ] && echo "$hostname" > /tmp/dhcp.hostname
        : > /tmp/resolv.conf
        [ -n "$domain" ] && echo "search $domain" >> /tmp/resolv.conf
        for d in $dns; do echo "nameserver $d" >> /tmp/resolv.conf; done
        ;;
esac
exit 0
