//! The guest side of the e2e run: kernel, installer initrd and OS images.
