//! A synthetic kiwi OEM PXE build: what `kiwi-ng --profile oem` with
//! `installpxe="true"` hands over, with a small raw "disk".

use md5::{Digest, Md5};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const BASE: &str = "opensuse-leap.x86_64-15.6.1";

pub fn raw_disk(len: usize, seed: u8) -> Vec<u8> {
    // Half runs (compressible), half xorshift noise (not), like a disk.
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(seed);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i / 4096) % 2 == 0 {
                (i / 512) as u8 ^ seed
            } else {
                x as u8
            }
        })
        .collect()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn md5_line(data: &[u8]) -> String {
    let sum: String = Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // kiwi: <md5 of the raw disk> <blocks> <blocksize>
    format!("{sum} {} 512\n", data.len() / 512)
}

/// Write the unpacked kiwi outputs of `base` into `dir` (created).
pub fn build_dir(dir: &Path, base: &str, raw: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let w = |n: &str, c: &[u8]| std::fs::write(dir.join(n), c).unwrap();
    w(&format!("{base}.xz"), &xz(raw));
    w(&format!("{base}.md5"), md5_line(raw).as_bytes());
    w(&format!("pxeboot.{base}.kernel"), b"KERNEL-bytes");
    std::os::unix::fs::symlink(
        format!("pxeboot.{base}.kernel"),
        dir.join(format!("{base}.kernel")),
    )
    .unwrap();
    w(&format!("pxeboot.{base}.initrd.xz"), &xz(b"install initrd"));
    w(&format!("{base}.initrd"), b"system initrd");
    w(
        &format!("{base}.append"),
        b"rd.kiwi.install.pxe rd.kiwi.install.image=http://example.com/image.xz splash=silent\n",
    );
    w(
        &format!("{base}.config.bootoptions"),
        b"root=UUID=1234 rw\n",
    );
    dir.to_owned()
}

/// [`build_dir`] of [`BASE`] from a `len`-byte disk (seed 1).
pub fn base_build(dir: &Path, len: usize) -> PathBuf {
    build_dir(dir, BASE, &raw_disk(len, 1))
}

/// The same outputs packed as kiwi's `<base>.install.tar` in `dir`.
pub fn install_tar(dir: &Path, base: &str, raw: &[u8]) -> PathBuf {
    let files = dir.join("files");
    build_dir(&files, base, raw);
    let tar_path = dir.join(format!("{base}.install.tar"));
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    b.follow_symlinks(false);
    let mut names: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        b.append_path_with_name(files.join(&n), &n).unwrap();
    }
    b.finish().unwrap();
    std::fs::remove_dir_all(&files).unwrap();
    tar_path
}
