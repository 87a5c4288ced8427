//! The guest side of the e2e run: kernel, installer initrd and OS images.
//!
//! [`kiwi_build`] writes what a `kiwi-ng` OEM build with
//! `installpxe="true"` hands over, for a tiny OS assembled from this
//! machine's Debian packages:
//!
//! - the kernel is Debian's d-i kernel;
//! - the install initrd (`pxeboot.<base>.initrd.xz`) is a newc cpio written
//!   here: static busybox, the NIC modules of Debian's d-i initrd and
//!   `guest/installer-init.sh`, which does what kiwi's PXE installer does
//!   (DHCP, download `rd.kiwi.install.image=`, check the `.md5`, dump);
//! - the "raw disk" (`<base>.xz`) is a plain tar of the installed OS root:
//!   busybox, OpenSSH's sshd and sftp-server (root login with password)
//!   and a trimmed Python 3.11, enough for salt-ssh's `state.apply`.
//!
//! Builds are cached by a fingerprint of their inputs under
//! `<target>/e2e-cache` and copied into `out`.

use anyhow::{Context, Result, anyhow, bail, ensure};
use md5::{Digest, Md5};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the installer or the installed OS does differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Installs and boots as asked.
    Normal,
    /// The installer prints a few lines (up to DHCP) and then stalls
    /// silently forever, before any download.
    HangInInstaller,
    /// kiwi's image root says the spec's OS, but the OS inside the disk
    /// image says this one (a node that boots something else).
    LieAboutOs { os_id: String, version_id: String },
}

/// One OS image build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsSpec {
    /// kiwi's image name, e.g. `e2e-alpha`.
    pub name: String,
    /// kiwi's image version, e.g. `1.0`.
    pub version: String,
    /// os-release `ID`.
    pub os_id: String,
    /// os-release `VERSION_ID`.
    pub os_version_id: String,
    /// os-release `PRETTY_NAME` (and `NAME`).
    pub pretty_name: String,
    /// `/etc/ImageID`.
    pub image_id: String,
    pub behaviour: Behaviour,
}

impl OsSpec {
    /// kiwi's `<name>.x86_64-<version>`.
    pub fn base(&self) -> String {
        format!("{}.x86_64-{}", self.name, self.version)
    }
}

/// The Debian inputs.
const DI_DIR: &str = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64";
const BUSYBOX: &str = "/bin/busybox";
const SSHD: &str = "/usr/sbin/sshd";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const SCP: &str = "/usr/bin/scp";
const LDCONFIG: &str = "/sbin/ldconfig";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const PYTHON: &str = "/usr/bin/python3.11";
const PYTHON_LIB: &str = "/usr/lib/python3.11";
/// `sys.implementation.cache_tag` of that Python.
const PYC_TAG: &str = "cpython-311";
/// Changes whenever a Debian package is installed or upgraded.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";

const INSTALLER_INIT: &str = include_str!("guest/installer-init.sh");
const UDHCPC_SCRIPT: &str = include_str!("guest/udhcpc.sh");
const OS_INIT: &str = include_str!("guest/os-init.sh");
const SSHD_CONFIG: &str = include_str!("guest/sshd_config");

/// Bump when the build changes in a way the fingerprint does not see.
const BUILD_FORMAT: u32 = 2;
/// mtime of the files made here (not copied from the host).
const MTIME: u64 = 1_700_000_000;
/// xz preset of the disk image and the initrd: 1 compresses the 50 MB
/// disk in ~7 s, 6 in ~45 s, for 16 MB against 13.6 MB.
const XZ_PRESET: u32 = 1;

/// Kernel modules the installer loads, in this order (their dependencies
/// first): e1000 for the BIOS VMs, virtio-net for the UEFI ones.
const NIC_MODULES: &[&str] = &["e1000", "virtio_pci", "virtio_net"];

/// Python stdlib directories the guest goes without.
const PY_DROP_DIRS: &[&str] = &[
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "dist-packages",
    "__phello__",
    "curses",
    "sqlite3",
];
/// Python extension modules the guest goes without (tests, terminals,
/// dbm, audio), with the libraries only they pull in.
const PY_DROP_EXT: &[&str] = &[
    "_test",
    "_xxtestfuzz",
    "_ctypes_test",
    "xxlimited",
    "_xxsubinterpreters",
    "_curses",
    "readline",
    "_sqlite3",
    "_codecs_jp",
    "_codecs_kr",
    "_codecs_cn",
    "_codecs_hk",
    "_codecs_tw",
    "_codecs_iso2022",
    "_dbm",
    "_gdbm",
    "nis",
    "ossaudiodev",
];

/// Write the kiwi build of `spec` into `out` (created); returns `out`.
pub fn kiwi_build(out: &Path, spec: &OsSpec, root_password: &str) -> Result<PathBuf> {
    let key = fingerprint(spec, root_password)?;
    let cache_root = cache_dir();
    let cached = cache_root.join(format!("{}-{key}", spec.base()));
    if !cached.join("complete").exists() {
        std::fs::create_dir_all(&cache_root)
            .with_context(|| format!("cannot create {}", cache_root.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".build-")
            .tempdir_in(&cache_root)?;
        build_into(tmp.path(), spec, root_password, &key)?;
        std::fs::write(tmp.path().join("complete"), b"")?;
        let tmp = tmp.keep();
        if let Err(e) = std::fs::rename(&tmp, &cached) {
            // A concurrent build won the race: use its copy.
            std::fs::remove_dir_all(&tmp).ok();
            ensure!(
                cached.join("complete").exists(),
                "cannot move the build to {}: {e}",
                cached.display()
            );
        }
    }
    prune_cache(&cache_root, &spec.base(), &cached);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    link_tree(&cached, out)?;
    std::fs::remove_file(out.join("complete")).ok();
    Ok(out.to_owned())
}

/// Remove the older builds of `base` from the cache (best effort: a
/// concurrent run may still link from one).
fn prune_cache(cache_root: &Path, base: &str, keep: &Path) {
    let Ok(dir) = std::fs::read_dir(cache_root) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(key) = name.strip_prefix(&format!("{base}-")) else {
            continue;
        };
        if key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()) && e.path() != keep {
            std::fs::remove_dir_all(e.path()).ok();
        }
    }
}

/// `$CARGO_TARGET_DIR/e2e-cache`, else `<workspace>/target/e2e-cache`.
fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("e2e-cache")
}

/// Hex md5 of everything the build depends on: the spec, the password,
/// the scripts, and the size and mtime of the host inputs.
fn fingerprint(spec: &OsSpec, root_password: &str) -> Result<String> {
    let mut h = Md5::new();
    h.update(format!("{BUILD_FORMAT} {XZ_PRESET} {spec:?}\0{root_password}\0").as_bytes());
    for s in [INSTALLER_INIT, UDHCPC_SCRIPT, OS_INIT, SSHD_CONFIG] {
        h.update(s.as_bytes());
        h.update(b"\0");
    }
    let kernel = format!("{DI_DIR}/linux");
    let di_initrd = format!("{DI_DIR}/initrd.gz");
    for p in [
        kernel.as_str(),
        di_initrd.as_str(),
        BUSYBOX,
        SSHD,
        SFTP_SERVER,
        PYTHON,
        PYTHON_LIB,
        DPKG_STATUS,
    ] {
        match std::fs::metadata(p) {
            Ok(m) => h.update(format!("{p} {} {}\n", m.len(), m.mtime()).as_bytes()),
            Err(_) if p == DPKG_STATUS => {}
            Err(e) => bail!("{p}: {e} (the e2e guest is built from Debian 12 packages)"),
        }
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// Build every output into the empty dir `dir`.
fn build_into(dir: &Path, spec: &OsSpec, root_password: &str, key: &str) -> Result<()> {
    let base = spec.base();
    let w = |n: &str, c: &[u8]| {
        std::fs::write(dir.join(n), c).with_context(|| format!("cannot write {n}"))
    };

    // The raw disk: a tar of the installed root.
    let root = os_tree(spec, root_password, &key[..16])?;
    let raw = root.to_tar()?;
    w(&format!("{base}.md5"), md5_line(&raw).as_bytes())?;
    w(&format!("{base}.xz"), &xz(&raw)?)?;
    drop(raw);

    // Kernel and install initrd.
    let kernel = format!("pxeboot.{base}.kernel");
    std::fs::copy(format!("{DI_DIR}/linux"), dir.join(&kernel))
        .with_context(|| format!("cannot copy {DI_DIR}/linux"))?;
    std::os::unix::fs::symlink(&kernel, dir.join(format!("{base}.kernel")))?;
    let initrd = installer_tree(spec)?.to_cpio();
    w(&format!("pxeboot.{base}.initrd.xz"), &xz(&initrd)?)?;

    // The installed system's initrd: kiwi's installer fetches it to kexec;
    // ours does not, so an empty cpio stands in.
    w(&format!("{base}.initrd"), &Tree::default().to_cpio())?;
    w(
        &format!("{base}.append"),
        b"rd.kiwi.install.pxe rd.kiwi.install.image=http://example.com/image.xz console=ttyS0,115200 loglevel=5\n",
    )?;
    w(
        &format!("{base}.config.bootoptions"),
        b"rw console=ttyS0,115200\n",
    )?;

    // What kiwi leaves of its image root: the OS identity as built.
    let etc = dir.join("build/image-root/etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        etc.join("os-release"),
        os_release(&spec.os_id, &spec.os_version_id, &spec.pretty_name),
    )?;
    std::fs::write(etc.join("ImageID"), format!("{}\n", spec.image_id))?;
    Ok(())
}

fn os_release(id: &str, version_id: &str, pretty: &str) -> String {
    format!("NAME=\"{pretty}\"\nID={id}\nVERSION_ID=\"{version_id}\"\nPRETTY_NAME=\"{pretty}\"\n")
}

/// kiwi's checksum file: `<md5> <blocks> 512`.
fn md5_line(raw: &[u8]) -> String {
    format!("{} {} 512\n", hex(&Md5::digest(raw)), raw.len() / 512)
}

/// xz with CRC32 checks: the kernel's initramfs decoder knows no CRC64.
fn xz(data: &[u8]) -> Result<Vec<u8>> {
    let stream =
        liblzma::stream::Stream::new_easy_encoder(XZ_PRESET, liblzma::stream::Check::Crc32)?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Vec::with_capacity(data.len() / 4), stream);
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// Copy the files and symlinks of `src` into `dst`.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_dir() {
            std::fs::create_dir_all(&to)?;
            link_tree(&from, &to)?;
            continue;
        }
        if to.symlink_metadata().is_ok() {
            std::fs::remove_file(&to)
                .with_context(|| format!("cannot replace {}", to.display()))?;
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            // A copy, not a hard link: a test that corrupts its image must
            // not corrupt the cache.
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// File trees and their archives.

#[derive(Debug, Clone)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        mtime: u64,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    CharDev {
        mode: u32,
        major: u32,
        minor: u32,
    },
}

/// A file tree by path (relative, no leading `/`), parents before children.
#[derive(Debug, Default)]
struct Tree(BTreeMap<String, Node>);

impl Tree {
    fn parents(&mut self, path: &str) {
        let mut p = path;
        while let Some((parent, _)) = p.rsplit_once('/') {
            self.0
                .entry(parent.to_owned())
                .or_insert(Node::Dir { mode: 0o755 });
            p = parent;
        }
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/');
        self.parents(path);
        self.0.insert(path.to_owned(), node);
    }

    fn dir(&mut self, path: &str, mode: u32) {
        self.insert(path, Node::Dir { mode });
    }

    fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        let data = data.into();
        self.insert(
            path,
            Node::File {
                mode,
                mtime: MTIME,
                data,
            },
        );
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_owned(),
            },
        );
    }

    /// Copy host file `host` (following symlinks) to `path`, keeping its
    /// mode and mtime (Python checks its .pyc files against the mtime).
    fn copy(&mut self, path: &str, host: &Path) -> Result<()> {
        let meta = std::fs::metadata(host).with_context(|| format!("{}", host.display()))?;
        let data =
            std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        let mode = meta.permissions().mode() & 0o7777;
        let mtime = u64::try_from(meta.mtime()).unwrap_or(MTIME);
        self.insert(path, Node::File { mode, mtime, data });
        Ok(())
    }

    /// newc cpio, as the kernel unpacks it.
    fn to_cpio(&self) -> Vec<u8> {
        let mut w = CpioWriter::default();
        for (path, node) in &self.0 {
            match node {
                Node::Dir { mode } => w.entry(path, 0o040000 | mode, MTIME, (0, 0), b""),
                Node::File { mode, mtime, data } => {
                    w.entry(path, 0o100000 | mode, *mtime, (0, 0), data)
                }
                Node::Symlink { target } => {
                    w.entry(path, 0o120777, MTIME, (0, 0), target.as_bytes())
                }
                Node::CharDev { mode, major, minor } => {
                    w.entry(path, 0o020000 | mode, MTIME, (*major, *minor), b"")
                }
            }
        }
        w.finish()
    }

    /// A ustar/GNU tar, padded to whole 512-byte blocks.
    fn to_tar(&self) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, node) in &self.0 {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            h.set_size(0);
            match node {
                Node::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                }
                Node::File { mode, mtime, data } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_mtime(*mtime);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())?;
                }
                Node::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    b.append_link(&mut h, path, target)?;
                }
                Node::CharDev { mode, major, minor } => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_mode(*mode);
                    h.set_device_major(*major)?;
                    h.set_device_minor(*minor)?;
                    b.append_data(&mut h, path, std::io::empty())?;
                }
            }
        }
        let mut raw = b.into_inner()?;
        raw.resize(raw.len().div_ceil(512) * 512, 0);
        Ok(raw)
    }
}

/// A newc ("070701") cpio archive writer.
#[derive(Default)]
struct CpioWriter {
    out: Vec<u8>,
    ino: u32,
}

impl CpioWriter {
    fn entry(&mut self, name: &str, mode: u32, mtime: u64, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            u32::try_from(mtime).unwrap_or(0),
            u32::try_from(data.len()).expect("cpio member over 4 GiB"),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("cpio name too long"),
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().div_ceil(4) * 4, 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 0, (0, 0), b"");
        self.out.resize(self.out.len().div_ceil(512) * 512, 0);
        self.out
    }
}

/// A member of a newc cpio archive.
#[derive(Debug, Clone, PartialEq)]
struct CpioEntry {
    name: String,
    mode: u32,
    data: Vec<u8>,
}

/// The members of newc cpio `data` (several concatenated archives too).
fn cpio_read(data: &[u8]) -> Result<Vec<CpioEntry>> {
    let field = |at: usize| -> Result<usize> {
        let s = data
            .get(at..at + 8)
            .ok_or_else(|| anyhow!("cpio truncated at {at}"))?;
        let s = std::str::from_utf8(s)?;
        Ok(usize::from_str_radix(s, 16)?)
    };
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        // Skip the zero padding between concatenated archives.
        while data.get(at) == Some(&0) {
            at += 1;
        }
        if at >= data.len() {
            break;
        }
        ensure!(
            data.get(at..at + 6) == Some(b"070701".as_slice()),
            "no newc cpio header at byte {at}"
        );
        let mode = u32::try_from(field(at + 14)?)?;
        let size = field(at + 54)?;
        let namesize = field(at + 94)?;
        let name_at = at + 110;
        let name = data
            .get(name_at..name_at + namesize.saturating_sub(1))
            .ok_or_else(|| anyhow!("cpio name truncated at {at}"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let data_at = (name_at + namesize).div_ceil(4) * 4;
        let body = data
            .get(data_at..data_at + size)
            .ok_or_else(|| anyhow!("cpio member {name} truncated"))?;
        at = (data_at + size).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            continue;
        }
        entries.push(CpioEntry {
            name,
            mode,
            data: body.to_vec(),
        });
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------
// The install initrd.

/// A kernel module: its path in the initrd and its contents.
type Module = (String, Vec<u8>);

/// NIC modules of Debian's d-i initrd: `(kernel version, [(path, .ko)])`,
/// dependencies before their users.
fn nic_modules() -> Result<(String, Vec<Module>)> {
    let gz = format!("{DI_DIR}/initrd.gz");
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(
        std::fs::File::open(&gz).with_context(|| format!("cannot open {gz}"))?,
    )
    .read_to_end(&mut raw)
    .with_context(|| format!("cannot decompress {gz}"))?;
    // module name (with `_`) -> (path, contents)
    let mut mods: BTreeMap<String, Module> = BTreeMap::new();
    let mut version = None;
    for e in cpio_read(&raw)? {
        let Some(rest) = e.name.strip_prefix("lib/modules/") else {
            continue;
        };
        let Some(file) = e.name.strip_suffix(".ko") else {
            continue;
        };
        let ver = rest.split('/').next().unwrap_or_default().to_owned();
        let stem = file
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .replace('-', "_");
        version.get_or_insert(ver);
        mods.insert(stem, (e.name, e.data));
    }
    let version = version.ok_or_else(|| anyhow!("{gz} holds no kernel modules"))?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for m in NIC_MODULES {
        add_with_deps(m, &mods, &mut seen, &mut order)?;
    }
    let picked = order.into_iter().map(|m| mods[&m].clone()).collect();
    Ok((version, picked))
}

fn add_with_deps(
    m: &str,
    mods: &BTreeMap<String, Module>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<()> {
    if !seen.insert(m.to_owned()) {
        return Ok(());
    }
    let Some((_, ko)) = mods.get(m) else {
        // Not a module: built into the kernel.
        return Ok(());
    };
    for d in modinfo_depends(ko) {
        add_with_deps(&d, mods, seen, order)?;
    }
    order.push(m.to_owned());
    Ok(())
}

/// The `depends=` of a .ko's .modinfo.
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

fn installer_tree(spec: &OsSpec) -> Result<Tree> {
    let mut t = Tree::default();
    t.file("init", 0o755, INSTALLER_INIT);
    t.copy("bin/busybox", Path::new(BUSYBOX))?;
    for d in [
        "proc", "sys", "tmp", "sysroot", "sbin", "usr/bin", "usr/sbin", "etc",
    ] {
        t.dir(d, 0o755);
    }
    t.dir("dev", 0o755);
    t.insert(
        "dev/console",
        Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );
    t.insert(
        "dev/null",
        Node::CharDev {
            mode: 0o666,
            major: 1,
            minor: 3,
        },
    );
    t.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT);
    let behaviour = match spec.behaviour {
        Behaviour::HangInInstaller => "hang",
        _ => "normal",
    };
    t.file(
        "etc/pelagos-installer.conf",
        0o644,
        format!("BEHAVIOUR={behaviour}\nIMAGE_NAME={}\n", spec.base()),
    );
    let (_version, modules) = nic_modules()?;
    let mut load = String::new();
    for (path, ko) in modules {
        load.push_str(&format!("/{path}\n"));
        t.file(&path, 0o644, ko);
    }
    t.file("etc/modules.load", 0o644, load);
    Ok(t)
}

// ---------------------------------------------------------------------------
// The installed OS.

fn os_tree(spec: &OsSpec, root_password: &str, salt: &str) -> Result<Tree> {
    let mut t = Tree::default();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "lib", "lib64", "proc", "sys", "dev", "run",
        "var/log", "mnt",
    ] {
        t.dir(d, 0o755);
    }
    t.dir("root", 0o700);
    t.dir("tmp", 0o1777);
    t.dir("var/tmp", 0o1777);
    t.symlink("var/run", "../run");

    // busybox and its applets
    t.copy("bin/busybox", Path::new(BUSYBOX))?;
    let list = output(Command::new(BUSYBOX).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if matches!(applet, "sbin/init" | "linuxrc" | "bin/busybox") {
            continue;
        }
        t.symlink(applet, "/bin/busybox");
    }
    t.file("sbin/init", 0o755, OS_INIT);
    t.file("etc/udhcpc.script", 0o755, UDHCPC_SCRIPT);

    // identity
    let (id, version_id, pretty) = match &spec.behaviour {
        Behaviour::LieAboutOs { os_id, version_id } => (
            os_id.clone(),
            version_id.clone(),
            format!("{os_id} {version_id}"),
        ),
        _ => (
            spec.os_id.clone(),
            spec.os_version_id.clone(),
            spec.pretty_name.clone(),
        ),
    };
    t.file(
        "etc/os-release",
        0o644,
        os_release(&id, &version_id, &pretty),
    );
    t.symlink("usr/lib/os-release", "../../etc/os-release");
    t.file("etc/ImageID", 0o644, format!("{}\n", spec.image_id));
    t.file("etc/hostname", 0o644, format!("{}\n", spec.name));
    t.file("etc/hosts", 0o644, "127.0.0.1 localhost\n");

    // users
    t.file(
        "etc/passwd",
        0o644,
        "root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    );
    t.file(
        "etc/shadow",
        0o600,
        format!(
            "root:{}:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
            sha512_crypt(root_password, salt)?
        ),
    );
    t.file(
        "etc/group",
        0o644,
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    );
    t.file("etc/shells", 0o644, "/bin/sh\n/bin/ash\n");
    t.file(
        "etc/profile",
        0o644,
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
    );

    // ssh: OpenSSH's sshd (dropbear takes no command over 9000 bytes;
    // salt-ssh sends its ~40 kB shim as the command) with a host key made
    // here, so that the guest needs no entropy for it at boot.
    t.copy("usr/sbin/sshd", Path::new(SSHD))?;
    t.copy("usr/lib/openssh/sftp-server", Path::new(SFTP_SERVER))?;
    t.symlink("usr/lib/sftp-server", "openssh/sftp-server");
    // salt-ssh's shim insists on an scp on the node
    t.copy("usr/bin/scp", Path::new(SCP))?;
    // ctypes.util.find_library (salt's libcrypto) asks `ldconfig -p`;
    // init makes the cache
    t.copy("sbin/ldconfig", Path::new(LDCONFIG))?;
    t.file("etc/ssh/sshd_config", 0o644, SSHD_CONFIG);
    let (key, pubkey) = ssh_host_key()?;
    t.file("etc/ssh/ssh_host_ed25519_key", 0o600, key);
    t.file("etc/ssh/ssh_host_ed25519_key.pub", 0o644, pubkey);
    t.dir("run/sshd", 0o755);

    // Python
    t.copy("usr/bin/python3.11", Path::new(PYTHON))?;
    t.symlink("usr/bin/python3", "python3.11");
    let mut elfs = vec![
        PathBuf::from(SSHD),
        PathBuf::from(SFTP_SERVER),
        PathBuf::from(SCP),
        PathBuf::from(PYTHON),
    ];
    copy_python_lib(
        &mut t,
        Path::new(PYTHON_LIB),
        "usr/lib/python3.11",
        &mut elfs,
    )?;

    // the libraries of every ELF
    for lib in ldd(&elfs)? {
        t.copy(&lib, Path::new(&lib))?;
    }
    Ok(t)
}

/// Copy the stdlib at `host` to `path`, trimmed and sourceless where
/// Debian compiled it; collects its extensions.
fn copy_python_lib(t: &mut Tree, host: &Path, path: &str, elfs: &mut Vec<PathBuf>) -> Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(host)
        .with_context(|| format!("cannot list {}", host.display()))?
        .collect::<std::io::Result<_>>()?;
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let (hp, p) = (e.path(), format!("{path}/{name}"));
        let ft = e.file_type()?;
        if ft.is_dir() {
            if PY_DROP_DIRS.contains(&name.as_str())
                || name.starts_with("config-")
                || name == "__pycache__"
            {
                continue;
            }
            copy_python_lib(t, &hp, &p, elfs)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&hp)?;
            let resolved = hp.parent().unwrap_or(host).join(&target);
            if target.is_relative() && resolved.starts_with(PYTHON_LIB) {
                t.symlink(&p, &target.to_string_lossy());
            } else if resolved.exists() {
                t.copy(&p, &hp)?;
            }
        } else {
            if name.ends_with(".so") && PY_DROP_EXT.iter().any(|x| name.starts_with(x)) {
                continue;
            }
            if name.ends_with(".so") {
                elfs.push(hp.clone());
            }
            // Sourceless: Debian's byte-compiled module in place of its
            // source (a third less to download and unpack, and no
            // compiling under TCG).
            if let Some(stem) = name.strip_suffix(".py") {
                let pyc = host.join(format!("__pycache__/{stem}.{PYC_TAG}.pyc"));
                if pyc.is_file() {
                    t.copy(&format!("{path}/{stem}.pyc"), &pyc)?;
                    continue;
                }
            }
            t.copy(&p, &hp)?;
        }
    }
    Ok(())
}

/// The libraries (and the loader) `ldd` lists for `elfs`, by path.
fn ldd(elfs: &[PathBuf]) -> Result<BTreeSet<String>> {
    let text = output(Command::new("ldd").args(elfs))?;
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=> ") {
            Some((_, rest)) => rest,
            None => line,
        };
        let path = path.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') && !path.ends_with(':') {
            libs.insert(path.to_owned());
        }
    }
    ensure!(
        libs.iter().any(|l| l.contains("ld-linux")),
        "ldd listed no loader for {elfs:?}:\n{text}"
    );
    Ok(libs)
}

/// A fresh ed25519 host key: (private, public).
fn ssh_host_key() -> Result<(Vec<u8>, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("key");
    output(
        Command::new(SSH_KEYGEN)
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "pelagos-e2e-guest",
                "-f",
            ])
            .arg(&key),
    )?;
    Ok((
        std::fs::read(&key)?,
        std::fs::read(key.with_extension("pub"))?,
    ))
}

/// sha512-crypt of `password` with `salt`, by `openssl passwd -6`
/// (password on stdin, never in argv).
fn sha512_crypt(password: &str, salt: &str) -> Result<String> {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-salt", salt, "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run openssl")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin"))?
        .write_all(format!("{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "openssl passwd failed");
    let hash = String::from_utf8(out.stdout)?.trim().to_owned();
    ensure!(hash.starts_with("$6$"), "openssl passwd gave [{hash}]");
    Ok(hash)
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed: {}", out.status);
    Ok(String::from_utf8(out.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_round_trips() {
        let mut t = Tree::default();
        t.file("etc/a", 0o644, "hello");
        t.symlink("bin/sh", "/bin/busybox");
        t.insert(
            "dev/console",
            Node::CharDev {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        );
        let raw = t.to_cpio();
        assert_eq!(raw.len() % 512, 0);
        let got: Vec<_> = cpio_read(&raw)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.mode, e.data))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bin".into(), 0o040755, vec![]),
                ("bin/sh".into(), 0o120777, b"/bin/busybox".to_vec()),
                ("dev".into(), 0o040755, vec![]),
                ("dev/console".into(), 0o020600, vec![]),
                ("etc".into(), 0o040755, vec![]),
                ("etc/a".into(), 0o100644, b"hello".to_vec()),
            ]
        );
        // two archives back to back read as one
        let mut two = raw.clone();
        two.extend_from_slice(&raw);
        assert_eq!(cpio_read(&two).unwrap().len(), 12);
    }

    #[test]
    fn modinfo_depends_parsed() {
        let ko = b"\x7fELF..\0license=GPL\0depends=net_failover,virtio-ring\0name=virtio_net\0";
        assert_eq!(modinfo_depends(ko), vec!["net_failover", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
    }
}
