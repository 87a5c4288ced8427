//! Pelagos boot records (pxelinux, GRUB, iPXE) and the OS image catalog in the TFTP root.
