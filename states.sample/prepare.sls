# Salt state for a Pelagos provisioning host (Debian/Ubuntu or openSUSE):
# DHCP/DNS/TFTP by dnsmasq, consoles by conmand, boot loaders for BIOS
# (pxelinux), UEFI (GRUB, optionally shim) and iPXE, the TFTP root, and the
# pelagos service. Apply from a checkout holding states.sample/ as the file root:
#   salt-ssh -i --roster-file deploy.roster -c . 'provisioner' state.apply prepare
# Generate the per-lab files first: make-cfgs writes
# states/etc/dnsmasq/dnsmasq.d/network_nodes.conf and states/etc/conman.conf.

{% set suse = grains['os_family'] == 'Suse' %}
{% set tftp = '/srv/tftpboot' %}
{% if suse %}
{%   set syslinux_bios = '/usr/share/syslinux' %}
{%   set pxelinux = '/usr/share/syslinux/pxelinux.0' %}
{%   set grub_platform_dir = '/usr/share/grub2/x86_64-efi' %}
{% else %}
{%   set syslinux_bios = '/usr/lib/syslinux/modules/bios' %}
{%   set pxelinux = '/usr/lib/PXELINUX/pxelinux.0' %}
{%   set grub_platform_dir = '/usr/lib/grub/x86_64-efi' %}
{% endif %}

provisioning packages:
  pkg.installed:
    - pkgs:
      - dnsmasq
      - conman
      - ipmitool
      - rsync
      - curl
{% if suse %}
      - syslinux
      - grub2-x86_64-efi
      - shim
{% else %}
      - pxelinux
      - syslinux-common
      - grub-efi-amd64-bin
      - grub-common
      - ipxe
{% endif %}

/etc/dnsmasq.conf:
  file.managed:
    - source: salt://etc/dnsmasq/dnsmasq.conf

/etc/dnsmasq.d:
  file.recurse:
    - source: salt://etc/dnsmasq/dnsmasq.d
    - include_pat: '*.conf'
    - require:
      - pkg: provisioning packages

/etc/dnsmasq.d/hosts:
  file.managed:
    - source: salt://etc/dnsmasq/dnsmasq.d/hosts
    - replace: false

# Written by make-cfgs from the lab config.
/etc/dnsmasq.d/network_nodes.conf:
  file.managed:
    - source: salt://etc/dnsmasq/dnsmasq.d/network_nodes.conf

# Holds the BMC password (conmand needs it): root only.
/etc/conman.conf:
  file.managed:
    - source: salt://etc/conman.conf
    - mode: '0600'

/var/log/conman:
  file.directory:
    - mode: '0755'
    - makedirs: true

# The TFTP root: boot loaders, per-node records, OS images (add-image).
{% for d in ['', '/pxelinux.cfg', '/grub', '/ipxe', '/boot'] %}
{{ tftp }}{{ d }}:
  file.directory:
    - mode: '0755'
    - makedirs: true
{% endfor %}

# BIOS: pxelinux and the modules its menu needs.
{{ tftp }}/pxelinux.0:
  file.copy:
    - source: {{ pxelinux }}
    - force: true
{% for m in ['ldlinux.c32', 'menu.c32', 'libutil.c32'] %}
{{ tftp }}/{{ m }}:
  file.copy:
    - source: {{ syslinux_bios }}/{{ m }}
    - force: true
{% endfor %}

{{ tftp }}/pxelinux.cfg/default:
  file.managed:
    - source: salt://tftp/pxelinux.cfg/default.sample
    - replace: false

# UEFI: a GRUB network image whose prefix is grub/, so it reads
# grub/grub.cfg-01-<mac> (Pelagos' per-node record), then grub/grub.cfg.
grub netdir:
  cmd.run:
    - name: grub{{ '2' if suse else '' }}-mknetdir --net-directory={{ tftp }} --subdir=grub -d {{ grub_platform_dir }}
    - creates: {{ tftp }}/grub/x86_64-efi/core.efi
    - require:
      - pkg: provisioning packages

{{ tftp }}/grub/grub.cfg:
  file.managed:
    - source: salt://tftp/grub/grub.cfg
    - replace: false

# iPXE: the chain script and the lab menu.
{% for f in ['boot.ipxe', 'default.ipxe'] %}
{{ tftp }}/ipxe/{{ f }}:
  file.managed:
    - source: salt://tftp/ipxe/{{ f }}
{% endfor %}

# pelagos-server: REST API and the HTTP image route for kiwi.
/etc/systemd/system/pelagos.service:
  file.managed:
    - source: salt://etc/systemd/system/pelagos.service

dnsmasq:
  service.running:
    - enable: true
    - watch:
      - file: /etc/dnsmasq.conf
      - file: /etc/dnsmasq.d
      - file: /etc/dnsmasq.d/network_nodes.conf

conman:
  service.running:
    - enable: true
    - watch:
      - file: /etc/conman.conf

pelagos:
  service.running:
    - enable: true
    - require:
      - file: /etc/systemd/system/pelagos.service
      - service: dnsmasq
      - service: conman
