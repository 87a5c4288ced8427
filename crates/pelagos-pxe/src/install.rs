//! What `add-image` does: take a kiwi OEM PXE build (its output dir or the
//! `<name>.install.tar`), verify it, install it as `<root>/<name>-<version>/`
//! with an `image.json` manifest, and point the `<name>` symlink at it.
//!
//! kiwi's install tar holds `<base>.xz` (the raw disk, xz-compressed),
//! `<base>.md5` (`<md5 of the raw disk> <blocks> <blocksize>`),
//! `pxeboot.<base>.kernel` (plus a `<base>.kernel` symlink),
//! `pxeboot.<base>.initrd.xz` (the install initrd), `<base>.initrd` (the
//! installed system's initrd), `<base>.append` and
//! `<base>.config.bootoptions`, where `<base>` is `<name>.<arch>-<version>`.
//!
//! The image dir keeps kiwi's names for what the install initrd downloads
//! over HTTP (`<base>.xz`, `.md5`, `.kernel`, `.initrd`: kiwi-dump derives
//! the last three from the `.xz` URL) and the original's `pxeboot.kernel` /
//! `pxeboot.initrd.xz` for what the boot loader fetches over TFTP.
//!
//! Architecture invariant: an install is staged in a hidden dir of the root
//! and appears by one rename; the symlink flips by one rename. A failed,
//! refused or killed install leaves the visible catalog as it was (a killed
//! one may leave a hidden `.add-image.<pid>.*` dir, which [`clean_staging`]
//! and the next install remove).

use crate::catalog::{
    self, Catalog, DEFAULT_INITRD, DEFAULT_KERNEL, MANIFEST, Manifest, ManifestFile, RESERVED_DIRS,
};
use crate::error::PxeError;
use crate::records::{LOCAL, MAINTENANCE};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Prefix of staging dirs in the root (hidden, so never resolvable).
pub const STAGING_PREFIX: &str = ".add-image.";

/// Architectures kiwi puts between image name and version.
const ARCHES: &[&str] = &[
    "x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "i686", "i586", "armv7l", "riscv64",
];

/// Settings of one install.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Catalog name; default: kiwi's image name.
    pub name: Option<String>,
    /// Version; default: kiwi's image version.
    pub version: Option<String>,
    /// Other names teuthology may ask for.
    pub aliases: Vec<String>,
    /// Point `<name>` at the new version even if another one is current.
    /// (The first version of a name always becomes current.)
    pub set_current: bool,
}

/// Byte progress of an install; the binary draws it with indicatif.
pub trait Progress {
    /// A new file of `bytes` bytes starts.
    fn start(&self, _file: &str, _bytes: u64) {}
    /// `bytes` more bytes done; `Break` stops the install (nothing visible changes).
    fn advance(&self, _bytes: u64) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// The current file is done.
    fn finish(&self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Sizes and digests of one copied file.
#[derive(Debug, Clone, Default)]
struct Copied {
    size: u64,
    sha256: String,
    /// For the disk image: md5 and length of the decompressed xz stream.
    raw: Option<(String, u64)>,
}

/// Removes the staging dir unless disarmed.
struct Staging {
    dir: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove staging dir");
        }
    }
}

/// A writer that feeds md5 and counts bytes (the xz decoder's sink).
struct Md5Sink {
    md5: Md5,
    len: u64,
}

impl Write for Md5Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.md5.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copy `src` to a new file `dest`, hashing on the way (and decompressing
/// the xz stream into md5 when `xz` is set), then fsync.
fn copy_hashing(
    mut src: impl Read,
    dest: &Path,
    label: &str,
    total: u64,
    xz: bool,
    id: &str,
    progress: &dyn Progress,
) -> Result<Copied, PxeError> {
    let mut out = File::create_new(dest).map_err(PxeError::io("create", dest))?;
    let mut sha = Sha256::new();
    let mut dec = xz.then(|| {
        liblzma::write::XzDecoder::new_multi_decoder(Md5Sink {
            md5: Md5::new(),
            len: 0,
        })
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    progress.start(label, total);
    loop {
        let n = src.read(&mut buf).map_err(PxeError::io("read", label))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        out.write_all(chunk).map_err(PxeError::io("write", dest))?;
        sha.update(chunk);
        if let Some(d) = dec.as_mut() {
            d.write_all(chunk).map_err(|e| PxeError::KiwiOutput {
                path: PathBuf::from(label),
                message: format!("not a valid xz stream: {e}"),
            })?;
        }
        size += n as u64;
        if progress.advance(n as u64).is_break() {
            return Err(PxeError::Interrupted { id: id.to_owned() });
        }
    }
    out.sync_all().map_err(PxeError::io("fsync", dest))?;
    progress.finish();
    let raw = match dec {
        Some(d) => {
            let sink = d.finish().map_err(|e| PxeError::KiwiOutput {
                path: PathBuf::from(label),
                message: format!("truncated or invalid xz stream: {e}"),
            })?;
            Some((hex(&sink.md5.finalize()), sink.len))
        }
        None => None,
    };
    Ok(Copied {
        size,
        sha256: hex(&sha.finalize()),
        raw,
    })
}

/// The kiwi output files chosen from a listing.
#[derive(Debug, Clone, PartialEq)]
struct Outputs {
    base: String,
    image: String,
    md5: String,
    kernel: String,
    initrd: String,
    /// The installed system's initrd; kiwi-dump fetches it for kexec.
    system_initrd: String,
    append: Option<String>,
    bootoptions: Option<String>,
}

fn find_outputs(
    names: &BTreeSet<String>,
    links: &BTreeMap<String, String>,
    origin: &Path,
) -> Result<Outputs, PxeError> {
    let err = |message: String| PxeError::KiwiOutput {
        path: origin.to_owned(),
        message,
    };
    let images: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with(".xz") && !n.starts_with("pxeboot.") && !n.contains(".initrd"))
        .collect();
    let image = match images.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(err(
            "no disk image <name>.xz found (is this a kiwi oem build with installpxe=\"true\"?)"
                .into(),
        )),
        many => return Err(err(format!("several disk images found: {many:?}"))),
    };
    let base = image.trim_end_matches(".xz").to_owned();
    let has = |n: &str| names.contains(n);
    let md5 = format!("{base}.md5");
    if !has(&md5) {
        return Err(err(format!("checksum file {md5} missing")));
    }
    let kernel = [format!("pxeboot.{base}.kernel"), format!("{base}.kernel")]
        .into_iter()
        .map(|k| links.get(&k).cloned().unwrap_or(k))
        .find(|k| has(k))
        .ok_or_else(|| err(format!("kernel pxeboot.{base}.kernel missing")))?;
    let initrd = [
        format!("pxeboot.{base}.initrd.xz"),
        format!("pxeboot.{base}.initrd"),
    ]
    .into_iter()
    .find(|k| has(k))
    .ok_or_else(|| err(format!("install initrd pxeboot.{base}.initrd.xz missing")))?;
    let system_initrd = format!("{base}.initrd");
    if !has(&system_initrd) {
        return Err(err(format!(
            "system initrd {system_initrd} missing (kiwi's install initrd fetches it to kexec the installed system)"
        )));
    }
    let opt = |n: String| has(&n).then_some(n);
    Ok(Outputs {
        system_initrd,
        append: opt(format!("{base}.append")),
        bootoptions: opt(format!("{base}.config.bootoptions")),
        base,
        image,
        md5,
        kernel,
        initrd,
    })
}

/// kiwi's `<name>.<arch>-<version>` split into its parts.
fn split_base(base: &str) -> Option<(String, String, String)> {
    ARCHES.iter().find_map(|arch| {
        let (name, version) = base.rsplit_once(&format!(".{arch}-"))?;
        (!name.is_empty() && !version.is_empty())
            .then(|| (name.to_owned(), (*arch).to_owned(), version.to_owned()))
    })
}

/// The image's own kernel options: kiwi's `.append` without the
/// `rd.kiwi.install.pxe` / `rd.kiwi.install.image=` placeholders.
fn own_kernel_options(append: &str) -> String {
    append
        .split_whitespace()
        .filter(|w| *w != "rd.kiwi.install.pxe" && !w.starts_with("rd.kiwi.install.image="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse kiwi's checksum file: `<md5> [<blocks> <blocksize> ...]`.
fn parse_md5_file(text: &str, path: &Path) -> Result<(String, Option<u64>), PxeError> {
    let mut words = text.split_whitespace();
    let sum = words.next().unwrap_or_default().to_ascii_lowercase();
    if sum.len() != 32 || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(PxeError::KiwiOutput {
            path: path.to_owned(),
            message: format!("first word [{sum}] is not an md5 sum"),
        });
    }
    let nums: Vec<u64> = words.take(2).filter_map(|w| w.parse().ok()).collect();
    let bytes = match nums.as_slice() {
        [blocks, blocksize] => Some(blocks * blocksize),
        _ => None,
    };
    Ok((sum, bytes))
}

/// [`pelagos_config::atomic::sync_dir`] as a [`PxeError`]: after every
/// rename or removal in the root, so a power loss cannot undo it.
fn fsync_dir(dir: &Path) -> Result<(), PxeError> {
    pelagos_config::atomic::sync_dir(dir).map_err(PxeError::io("fsync", dir))
}

/// Where the install reads from.
enum Source {
    Dir(PathBuf),
    Tar(PathBuf),
}

fn classify(source: &Path) -> Result<Source, PxeError> {
    let md = fs::metadata(source).map_err(PxeError::io("read", source))?;
    // A file, or a pipe streaming one, is an install tar.
    if !md.is_dir() {
        return Ok(Source::Tar(source.to_owned()));
    }
    let tars: Vec<PathBuf> = fs::read_dir(source)
        .map_err(PxeError::io("list", source))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".install.tar"))
        .collect();
    let has_xz = fs::read_dir(source)
        .map_err(PxeError::io("list", source))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .any(|n| n.ends_with(".xz") && !n.starts_with("pxeboot."));
    match tars.as_slice() {
        [one] if !has_xz => Ok(Source::Tar(one.clone())),
        [_, _, ..] if !has_xz => Err(PxeError::KiwiOutput {
            path: source.to_owned(),
            message: format!("several .install.tar files: {tars:?}; name one"),
        }),
        _ => Ok(Source::Dir(source.to_owned())),
    }
}

/// Install a kiwi OEM PXE build into the catalog at `root`.
pub fn install(
    root: &Path,
    source: &Path,
    opts: &InstallOptions,
    progress: &dyn Progress,
) -> Result<Manifest, PxeError> {
    for n in opts.name.iter().chain(&opts.aliases) {
        check_catalog_name(n)?;
    }
    if let Some(v) = &opts.version {
        catalog::validate_name(v)?;
    }
    fs::create_dir_all(root).map_err(PxeError::io("create", root))?;
    if let Err(e) = clean_staging(root) {
        tracing::warn!(error = %e, "cannot clean leftover staging dirs");
    }
    let staging = Staging {
        dir: root.join(format!(
            "{STAGING_PREFIX}{}.{}",
            std::process::id(),
            time::OffsetDateTime::now_utc().unix_timestamp_nanos()
        )),
    };
    fs::create_dir(&staging.dir).map_err(PxeError::io("create", &staging.dir))?;

    // 1. A listing of the kiwi output; a tar is unpacked into staging first
    //    (hashing on the way), a dir is read in place.
    let src = classify(source)?;
    let mut names = BTreeSet::new();
    let mut links = BTreeMap::new();
    let mut copied: BTreeMap<String, Copied> = BTreeMap::new();
    let unpack = staging.dir.join("src");
    let src_dir = match &src {
        Source::Dir(d) => {
            for e in fs::read_dir(d).map_err(PxeError::io("list", d))? {
                let e = e.map_err(PxeError::io("list", d))?;
                let Ok(n) = e.file_name().into_string() else {
                    continue;
                };
                if let Ok(t) = fs::read_link(e.path())
                    && let Some(t) = t.file_name().and_then(|t| t.to_str())
                {
                    links.insert(n.clone(), t.to_owned());
                }
                if e.path().is_file() {
                    names.insert(n);
                }
            }
            d.clone()
        }
        Source::Tar(t) => {
            fs::create_dir(&unpack).map_err(PxeError::io("create", &unpack))?;
            let f = File::open(t).map_err(PxeError::io("open", t))?;
            let mut ar = tar::Archive::new(f);
            let bad = |e: io::Error| PxeError::KiwiOutput {
                path: t.clone(),
                message: format!("not a readable tar archive: {e}"),
            };
            for entry in ar.entries().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                let path = entry.path().map_err(bad)?.into_owned();
                // kiwi puts its files at the top (some versions under one dir).
                let Some(n) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                    continue;
                };
                if catalog::validate_name(&n).is_err() {
                    continue;
                }
                let kind = entry.header().entry_type();
                if kind.is_symlink() {
                    if let Some(target) = entry.link_name().map_err(bad)?
                        && let Some(tn) = target.file_name().and_then(|x| x.to_str())
                    {
                        links.insert(n, tn.to_owned());
                    }
                } else if kind.is_file() {
                    let size = entry.header().size().unwrap_or(0);
                    let is_image =
                        n.ends_with(".xz") && !n.starts_with("pxeboot.") && !n.contains(".initrd");
                    let c =
                        copy_hashing(entry, &unpack.join(&n), &n, size, is_image, &n, progress)?;
                    copied.insert(n.clone(), c);
                    names.insert(n);
                }
            }
            unpack.clone()
        }
    };
    let found = find_outputs(&names, &links, source)?;

    // 2. Name, version, id.
    let parsed = split_base(&found.base);
    let cannot_tell = |what: &str, pass: &str| PxeError::KiwiOutput {
        path: source.to_owned(),
        message: format!("cannot tell {what} from [{}]; pass {pass}", found.base),
    };
    let name = opts
        .name
        .clone()
        .or_else(|| parsed.as_ref().map(|p| p.0.clone()))
        .ok_or_else(|| cannot_tell("name and version", "--name and --version"))?;
    let version = opts
        .version
        .clone()
        .or_else(|| parsed.as_ref().map(|p| p.2.clone()))
        .ok_or_else(|| cannot_tell("the version", "--version"))?;
    let arch = parsed.map(|p| p.1).unwrap_or_default();
    check_catalog_name(&name)?;
    catalog::validate_name(&version)?;
    let id = format!("{name}-{version}");
    catalog::validate_name(&id)?;
    let dest = root.join(&id);
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(PxeError::AlreadyInstalled { id, path: dest });
    }

    // 3. The files under their installed names.
    let image_dir = staging.dir.join(&id);
    fs::create_dir(&image_dir).map_err(PxeError::io("create", &image_dir))?;
    let mut plan: Vec<(String, String)> = vec![
        (found.kernel.clone(), DEFAULT_KERNEL.to_owned()),
        (
            found.initrd.clone(),
            if found.initrd.ends_with(".xz") {
                DEFAULT_INITRD.to_owned()
            } else {
                "pxeboot.initrd".to_owned()
            },
        ),
        (found.image.clone(), found.image.clone()),
        (found.md5.clone(), found.md5.clone()),
    ];
    plan.push((found.system_initrd.clone(), found.system_initrd.clone()));
    plan.extend(found.append.iter().map(|a| (a.clone(), a.clone())));
    plan.extend(found.bootoptions.iter().map(|a| (a.clone(), a.clone())));
    let mut files = Vec::new();
    let mut image_raw = None;
    for (from, to) in &plan {
        let target = image_dir.join(to);
        let c = match &src {
            Source::Tar(_) => {
                fs::rename(src_dir.join(from), &target).map_err(PxeError::io("move", &target))?;
                copied.get(from).cloned().unwrap_or_default()
            }
            Source::Dir(d) => {
                let p = d.join(from);
                let f = File::open(&p).map_err(PxeError::io("open", &p))?;
                let total = f.metadata().map(|m| m.len()).unwrap_or(0);
                copy_hashing(f, &target, from, total, *from == found.image, &id, progress)?
            }
        };
        if *from == found.image {
            image_raw = c.raw.clone();
        }
        files.push(ManifestFile {
            name: to.clone(),
            size: c.size,
            sha256: c.sha256,
        });
    }

    // kiwi-dump derives <image>.md5, <image>.kernel and <image>.initrd from
    // rd.kiwi.install.image=<image>.xz and fetches all three (the kernel and
    // initrd to kexec the installed system): the kernel goes beside the
    // image under kiwi's name too, as a hard link.
    let kexec_kernel = format!("{}.kernel", found.base);
    let (k_from, k_to) = (
        image_dir.join(DEFAULT_KERNEL),
        image_dir.join(&kexec_kernel),
    );
    if fs::hard_link(&k_from, &k_to).is_err() {
        fs::copy(&k_from, &k_to).map_err(PxeError::io("copy", &k_to))?;
    }
    let k = files[0].clone();
    files.push(ManifestFile {
        name: kexec_kernel,
        ..k
    });

    // 4. kiwi's checksum is of the decompressed disk.
    let md5_path = image_dir.join(&found.md5);
    let md5_text = fs::read_to_string(&md5_path).map_err(PxeError::io("read", &md5_path))?;
    let (expected, expected_len) = parse_md5_file(&md5_text, &source.join(&found.md5))?;
    let (actual, raw_len) = image_raw.unwrap_or_default();
    if actual != expected {
        return Err(PxeError::Checksum {
            file: source.join(&found.image),
            expected,
            actual,
        });
    }
    if let Some(n) = expected_len.filter(|n| *n != raw_len) {
        return Err(PxeError::Checksum {
            file: source.join(&found.image),
            expected: format!("{n} bytes (blocks x blocksize in {})", found.md5),
            actual: format!("{raw_len} bytes"),
        });
    }
    let read_opt = |n: &Option<String>| -> Result<String, PxeError> {
        match n {
            Some(n) => {
                let p = image_dir.join(n);
                Ok(fs::read_to_string(&p)
                    .map_err(PxeError::io("read", &p))?
                    .trim()
                    .to_owned())
            }
            None => Ok(String::new()),
        }
    };
    let manifest = Manifest {
        name: name.clone(),
        version,
        arch,
        aliases: opts.aliases.clone(),
        kernel: plan[0].1.clone(),
        initrd: plan[1].1.clone(),
        image: found.image.clone(),
        image_md5: md5_text.trim().to_owned(),
        kernel_options: own_kernel_options(&read_opt(&found.append)?),
        config_bootoptions: read_opt(&found.bootoptions)?,
        files,
        installed: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        source: source.display().to_string(),
    };
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| PxeError::Manifest {
        path: image_dir.join(MANIFEST),
        message: e.to_string(),
    })?;
    pelagos_config::atomic::write_atomic(&image_dir.join(MANIFEST), json.as_bytes())
        .map_err(PxeError::io("write", image_dir.join(MANIFEST)))?;
    fsync_dir(&image_dir)?;

    // 5. Appear at once, then flip the symlink.
    fs::rename(&image_dir, &dest).map_err(PxeError::io("rename into place", &dest))?;
    fsync_dir(root)?;
    drop(staging);
    let catalog = Catalog::new(root);
    if opts.set_current || catalog.symlink_target(&name).is_none() {
        set_current(root, &id)?;
    }
    tracing::info!(id, root = %root.display(), "image installed");
    Ok(manifest)
}

/// A name an image may carry: plain, and not one the records or the
/// TFTP root already use.
fn check_catalog_name(n: &str) -> Result<(), PxeError> {
    catalog::validate_name(n)?;
    if [LOCAL, MAINTENANCE].contains(&n) || RESERVED_DIRS.contains(&n) {
        return Err(PxeError::InvalidName {
            name: n.to_owned(),
            reason: "reserved name",
        });
    }
    Ok(())
}

/// Point the symlink `<name>` at image dir `id` (one rename).
pub fn set_current(root: &Path, id: &str) -> Result<(), PxeError> {
    let catalog = Catalog::new(root);
    let m = catalog.manifest(id)?.ok_or_else(|| PxeError::NoSuchImage {
        id: id.to_owned(),
        dir: root.to_owned(),
    })?;
    let link = root.join(&m.name);
    if let Ok(md) = fs::symlink_metadata(&link)
        && !md.file_type().is_symlink()
    {
        return Err(PxeError::Io {
            action: "replace (not a symlink)",
            path: link,
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    let tmp = root.join(format!(
        ".{}.link.{}.{}",
        m.name,
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(id, &tmp).map_err(PxeError::io("create symlink", &tmp))?;
    fs::rename(&tmp, &link).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PxeError::io("rename symlink", &link)(e)
    })?;
    fsync_dir(root)?;
    tracing::info!(name = m.name, id, "current version set");
    Ok(())
}

/// Remove image dir `id`. The current version of its name is refused
/// unless `force`; then the symlink moves to the newest remaining version,
/// or goes when none remains.
pub fn remove(root: &Path, id: &str, force: bool) -> Result<(), PxeError> {
    catalog::validate_name(id)?;
    let catalog = Catalog::new(root);
    let dir = root.join(id);
    let is_dir = fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir());
    if !is_dir || RESERVED_DIRS.contains(&id) {
        return Err(PxeError::NoSuchImage {
            id: id.to_owned(),
            dir: root.to_owned(),
        });
    }
    let name = catalog.manifest(id)?.map(|m| m.name);
    let current = name
        .as_ref()
        .filter(|n| catalog.symlink_target(n).as_deref() == Some(id));
    if let Some(n) = current
        && !force
    {
        return Err(PxeError::IsCurrent {
            id: id.to_owned(),
            name: n.clone(),
        });
    }
    // Disappear at once, then delete at leisure.
    let gone = root.join(format!("{STAGING_PREFIX}{}.rm.{id}", std::process::id()));
    fs::rename(&dir, &gone).map_err(PxeError::io("rename away", &dir))?;
    fsync_dir(root)?;
    if let Some(n) = current {
        let next = catalog
            .images()?
            .into_iter()
            .filter(|e| e.manifest.name == *n)
            .max_by(|a, b| catalog::version_cmp(&a.manifest.version, &b.manifest.version));
        match next {
            Some(e) => set_current(root, &e.id)?,
            None => {
                fs::remove_file(root.join(n)).map_err(PxeError::io("remove", root.join(n)))?;
                fsync_dir(root)?;
            }
        }
    }
    fs::remove_dir_all(&gone).map_err(PxeError::io("remove", &gone))?;
    tracing::info!(id, "image removed");
    Ok(())
}

/// Keep the newest `keep` versions of every name (and always the current
/// one); remove the rest. Returns the removed ids.
pub fn prune(root: &Path, keep: usize) -> Result<Vec<String>, PxeError> {
    let catalog = Catalog::new(root);
    let mut by_name: BTreeMap<String, Vec<catalog::CatalogEntry>> = BTreeMap::new();
    for e in catalog.images()? {
        by_name.entry(e.manifest.name.clone()).or_default().push(e);
    }
    let mut removed = Vec::new();
    for (_, mut versions) in by_name {
        versions.sort_by(|a, b| catalog::version_cmp(&b.manifest.version, &a.manifest.version));
        for e in versions.into_iter().skip(keep).filter(|e| !e.current) {
            remove(root, &e.id, false)?;
            removed.push(e.id);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Remove staging dirs (`.add-image.<pid>.*`) left by installs or removals
/// whose process is gone. Dirs of running processes are left alone, so this
/// is safe while another add-image runs. Returns how many were removed.
pub fn clean_staging(root: &Path) -> Result<usize, PxeError> {
    let mut n = 0;
    let rd = match fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PxeError::io("list", root)(e)),
    };
    for e in rd {
        let e = e.map_err(PxeError::io("list", root))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or_default();
        let alive = !pid.is_empty() && Path::new("/proc").join(pid).exists();
        if !alive {
            fs::remove_dir_all(e.path()).map_err(PxeError::io("remove", e.path()))?;
            tracing::info!(dir = %e.path().display(), "removed leftover staging dir");
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiwi_base_names_split() {
        assert_eq!(
            split_base("opensuse-leap.x86_64-15.6.0"),
            Some(("opensuse-leap".into(), "x86_64".into(), "15.6.0".into()))
        );
        assert_eq!(
            split_base("LimeJeOS-Leap-15.6.aarch64-1.15.6"),
            Some((
                "LimeJeOS-Leap-15.6".into(),
                "aarch64".into(),
                "1.15.6".into()
            ))
        );
        assert_eq!(split_base("noarch-name"), None);
    }

    #[test]
    fn append_placeholders_dropped() {
        assert_eq!(
            own_kernel_options(
                "rd.kiwi.install.pxe rd.kiwi.install.image=http://example.com/image.xz splash=silent quiet\n"
            ),
            "splash=silent quiet"
        );
    }

    #[test]
    fn md5_file_parsed() {
        let p = Path::new("x.md5");
        let (s, n) = parse_md5_file("D41D8CD98F00B204E9800998ECF8427E 4 512\n", p).unwrap();
        assert_eq!(s, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(n, Some(2048));
        assert!(parse_md5_file("nothex 1 2", p).is_err());
    }
}
