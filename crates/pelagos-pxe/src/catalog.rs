//! The OS image catalog: image dirs `<root>/<name>-<version>/` with an
//! `image.json` manifest, and a symlink `<root>/<name>` naming the current
//! version.
//!
//! Resolving a requested OS goes, in order, through: a symlink in the root
//! (its target's name is the answer, as in the original); an image dir of
//! that exact name (manifest or hand-made); a manifest whose name or alias
//! is the request (the current version, else the newest); a manifest's
//! `<name>-<version>`; and teuthology's `<os_type>-<os_version>`, i.e. a
//! name or alias followed by a leading part of the version
//! (`opensuse-leap-15.6` finds `opensuse-leap` version `15.6.1-3.2`).

use crate::error::PxeError;
use crate::os_release::OsIdentity;
use crate::records::{LOCAL, MAINTENANCE};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// File name of the manifest inside an image dir.
pub const MANIFEST: &str = "image.json";

/// Dirs of the TFTP root that hold boot loader files, never OS images.
pub const RESERVED_DIRS: &[&str] = &["pxelinux.cfg", "grub", "ipxe", "boot"];

/// Kernel and initrd names the original's records used; also the fallback
/// for hand-made image dirs without a manifest.
pub const DEFAULT_KERNEL: &str = "pxeboot.kernel";
/// The install initrd's name in the original's records; see [`DEFAULT_KERNEL`].
pub const DEFAULT_INITRD: &str = "pxeboot.initrd.xz";

/// An OS name that resolved: `local`, `maintenance_image`, or the name of an
/// image dir in the TFTP root. Only [`ResolvedOs::LOCAL`],
/// [`ResolvedOs::MAINTENANCE`] and the catalog's resolution
/// ([`Catalog::resolve`], through [`crate::BootRecords::resolve_os`]) make
/// one, so a record written for it ([`crate::BootRecords::write`]) never
/// names an OS that was not looked up.
///
/// ```compile_fail
/// // A plain name is not a resolved OS.
/// let os: pelagos_pxe::ResolvedOs = String::from("sle-15.6").into();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedOs(Cow<'static, str>);

impl ResolvedOs {
    /// Boot the local disk.
    pub const LOCAL: ResolvedOs = ResolvedOs(Cow::Borrowed(LOCAL));
    /// Boot the lab's maintenance image.
    pub const MAINTENANCE: ResolvedOs = ResolvedOs(Cow::Borrowed(MAINTENANCE));

    /// An image dir of the catalog, found by [`Catalog::resolve`].
    fn image(id: String) -> Self {
        Self(Cow::Owned(id))
    }

    /// The name a record is written for: `local`, `maintenance_image` or an
    /// image dir's name (`<name>-<version>`, or a hand-made dir).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An installed image (neither `local` nor `maintenance_image`): what
    /// salt states are applied to after the install.
    pub fn is_image(&self) -> bool {
        *self != Self::LOCAL && *self != Self::MAINTENANCE
    }
}

impl fmt::Display for ResolvedOs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for ResolvedOs {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<ResolvedOs> for String {
    fn eq(&self, other: &ResolvedOs) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<ResolvedOs> for &str {
    fn eq(&self, other: &ResolvedOs) -> bool {
        *self == other.as_str()
    }
}

impl AsRef<str> for ResolvedOs {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ResolvedOs {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ResolvedOs {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<ResolvedOs> for String {
    fn from(os: ResolvedOs) -> String {
        os.0.into_owned()
    }
}

/// `image.json`: what add-image installed, so records and `check_image`
/// never guess from directory names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Catalog name (the `<name>` symlink, what teuthology asks for).
    pub name: String,
    /// Version; the image dir is `<name>-<version>`.
    pub version: String,
    /// Architecture kiwi built for (`x86_64`, `aarch64`); may be empty.
    #[serde(default)]
    pub arch: String,
    /// Other names teuthology may ask for (e.g. `opensuse` for `opensuse-leap`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// File names inside the image dir: the kernel,
    pub kernel: String,
    /// the install initrd,
    pub initrd: String,
    /// The xz-compressed disk image kiwi's install initrd downloads.
    pub image: String,
    /// kiwi's checksum line: `<md5 of the raw disk> <blocks> <blocksize>`.
    #[serde(default)]
    pub image_md5: String,
    /// The image's own kernel options from kiwi's `.append`, without the
    /// `rd.kiwi.install.*` placeholders (the records add their own).
    #[serde(default)]
    pub kernel_options: String,
    /// kiwi's `.config.bootoptions`: the installed system's command line.
    #[serde(default)]
    pub config_bootoptions: String,
    /// Every file add-image installed, with its size and checksum.
    pub files: Vec<ManifestFile>,
    /// When add-image installed it, RFC 3339 UTC.
    pub installed: String,
    /// Where add-image took it from.
    #[serde(default)]
    pub source: String,
    /// Which OS the image is (os-release `ID`/`VERSION_ID`, kiwi's image
    /// id): what a node booted from it must report. `None` in manifests of
    /// earlier add-image versions and when add-image could not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsIdentity>,
}

/// One file of an installed image, as add-image wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// File name inside the image dir.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its content, lower-case hex.
    pub sha256: String,
}

impl Manifest {
    /// `<name>-<version>`: the image dir's name and the resolved OS id.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// Total size of the listed files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    fn answers_to(&self, n: &str) -> bool {
        self.name == n || self.aliases.iter().any(|a| a == n)
    }

    /// Whether `os` is one of this image's names followed by `-` and a
    /// leading part of its version, cut at a `.`, `-` or `+`.
    fn matches_name_version_prefix(&self, os: &str) -> bool {
        std::iter::once(&self.name)
            .chain(&self.aliases)
            .filter_map(|n| os.strip_prefix(n.as_str())?.strip_prefix('-'))
            .any(|v| {
                !v.is_empty()
                    && (self.version == v
                        || self
                            .version
                            .strip_prefix(v)
                            .is_some_and(|rest| rest.starts_with(['.', '-', '+'])))
            })
    }
}

/// Reject anything that is not one plain, visible name inside the root.
pub fn validate_name(name: &str) -> Result<(), PxeError> {
    let bad = |reason| {
        Err(PxeError::InvalidName {
            name: name.escape_debug().to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.contains("..") {
        return bad("contains '..'");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("contains whitespace");
    }
    if name.len() > 200 {
        return bad("longer than 200 bytes");
    }
    Ok(())
}

/// Compare versions the way people read them: digit runs as numbers.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn parts(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then(x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

/// One installed image as `add-image list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    /// Dir name, `<name>-<version>`.
    pub id: String,
    /// Its `image.json`.
    pub manifest: Manifest,
    /// The `<name>` symlink points here.
    pub current: bool,
}

/// The image tree (the TFTP root).
#[derive(Debug, Clone)]
pub struct Catalog {
    root: PathBuf,
}

impl Catalog {
    /// The catalog of the TFTP root `root` (nothing is read yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The TFTP root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn not_found(&self, os: &str) -> PxeError {
        PxeError::NotFound {
            os: os.to_owned(),
            dir: self.root.clone(),
        }
    }

    /// The manifest of image dir `id`, `None` for a hand-made dir.
    pub fn manifest(&self, id: &str) -> Result<Option<Manifest>, PxeError> {
        validate_name(id)?;
        let path = self.root.join(id).join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PxeError::io("read", &path)(e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PxeError::Manifest {
                path,
                message: e.to_string(),
            })
    }

    /// Name of the dir the symlink `<root>/<name>` points at, if it is one
    /// and its target is an image dir in the root.
    pub fn symlink_target(&self, name: &str) -> Option<String> {
        let link = self.root.join(name);
        let target = fs::read_link(&link).ok()?;
        let base = target.file_name()?.to_str()?.to_owned();
        validate_name(&base).ok()?;
        self.root.join(&base).is_dir().then_some(base)
    }

    /// Every image dir with a readable manifest, sorted by name then
    /// version. Unreadable manifests are logged and skipped.
    pub fn images(&self) -> Result<Vec<CatalogEntry>, PxeError> {
        let rd = match fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PxeError::io("list", &self.root)(e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(PxeError::io("list", &self.root))?;
            let Some(id) = ent.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_name(&id).is_err() || RESERVED_DIRS.contains(&id.as_str()) {
                continue;
            }
            if !ent.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match self.manifest(&id) {
                Ok(Some(m)) => out.push(CatalogEntry {
                    id,
                    manifest: m,
                    current: false,
                }),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "skipping image dir"),
            }
        }
        let names: Vec<String> = out.iter().map(|e| e.manifest.name.clone()).collect();
        for (e, name) in out.iter_mut().zip(names) {
            e.current = self.symlink_target(&name).as_deref() == Some(e.id.as_str());
        }
        out.sort_by(|a, b| {
            a.manifest
                .name
                .cmp(&b.manifest.name)
                .then_with(|| version_cmp(&a.manifest.version, &b.manifest.version))
        });
        Ok(out)
    }

    /// Resolve a requested OS to an image dir (see the module docs).
    pub fn resolve(&self, os: &str) -> Result<ResolvedOs, PxeError> {
        self.resolve_id(os).map(ResolvedOs::image)
    }

    fn resolve_id(&self, os: &str) -> Result<String, PxeError> {
        validate_name(os)?;
        if RESERVED_DIRS.contains(&os) {
            return Err(self.not_found(os));
        }
        let path = self.root.join(os);
        match fs::symlink_metadata(&path) {
            Ok(md) if md.file_type().is_symlink() => {
                return self.symlink_target(os).ok_or_else(|| self.not_found(os));
            }
            Ok(md) if md.is_dir() => return Ok(os.to_owned()),
            _ => {}
        }
        let images = self.images()?;
        let best = |pred: &dyn Fn(&Manifest) -> bool| -> Option<String> {
            let matching: Vec<&CatalogEntry> =
                images.iter().filter(|e| pred(&e.manifest)).collect();
            matching
                .iter()
                .find(|e| e.current)
                .or_else(|| {
                    matching
                        .iter()
                        .max_by(|a, b| version_cmp(&a.manifest.version, &b.manifest.version))
                })
                .map(|e| e.id.clone())
        };
        best(&|m| m.answers_to(os))
            .or_else(|| best(&|m| m.id() == os))
            .or_else(|| best(&|m| m.matches_name_version_prefix(os)))
            .ok_or_else(|| self.not_found(os))
    }

    /// The file an HTTP request for `<IMAGE_ROUTE>/<rel>` may be answered
    /// with: every component a plain visible name (so no `..`, no staging
    /// dirs `.add-image.*`, no hidden files), not under the boot loader dirs,
    /// a regular file inside an image dir (`<dir>/<file>`, never a file at
    /// the top of the root), and still so once symlinks are followed (no
    /// escape out of the root, nor into the records or staging dirs).
    /// Returns the resolved path, the one that was checked. `None` means 404.
    pub fn servable(&self, rel: &str) -> Option<PathBuf> {
        let rel = rel.trim_start_matches('/');
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() < 2
            || parts.iter().any(|p| validate_name(p).is_err())
            || RESERVED_DIRS.contains(parts.first()?)
        {
            return None;
        }
        let path = self.root.join(rel);
        let real = fs::canonicalize(&path).ok()?;
        let root = fs::canonicalize(&self.root).ok()?;
        let mut inside = real.strip_prefix(&root).ok()?.components();
        let top = inside.next()?.as_os_str().to_str()?;
        let ok = inside.next().is_some()
            && validate_name(top).is_ok()
            && !RESERVED_DIRS.contains(&top)
            && real.is_file();
        if !ok {
            tracing::warn!(path = rel, target = %real.display(),
                "image request resolves outside the image dirs; refused");
        }
        ok.then_some(real)
    }

    /// What the records of image dir `id` boot: from its manifest, or for a
    /// hand-made dir the original's file names and its only `.xz` image.
    pub fn boot_files(&self, id: &str) -> Result<BootFiles, PxeError> {
        if let Some(m) = self.manifest(id)? {
            return Ok(BootFiles {
                kernel: m.kernel,
                initrd: m.initrd,
                image: m.image,
                kernel_options: m.kernel_options,
            });
        }
        let dir = self.root.join(id);
        let mut xz = disk_image_candidates(&dir)?;
        let image = if xz.len() == 1 {
            xz.remove(0)
        } else {
            tracing::warn!(dir = %dir.display(), candidates = ?xz,
                "image dir has no manifest and not exactly one .xz disk image; the record names none");
            String::new()
        };
        Ok(BootFiles {
            kernel: DEFAULT_KERNEL.into(),
            initrd: DEFAULT_INITRD.into(),
            image,
            kernel_options: String::new(),
        })
    }

    /// What image dir `id` lacks to be installed by a node: each missing
    /// file as `kernel <name>`, `initrd <name>` or `disk image <name>` (for
    /// a hand-made dir: `disk image (one .xz file; found none)`, or the
    /// candidates when there are several). Empty when the kernel, the
    /// install initrd and the disk image its records would name are regular
    /// files (symlinks followed) in the dir. The names are those of
    /// [`Self::boot_files`]: the manifest's, else the original's.
    pub fn missing_boot_files(&self, id: &str) -> Result<Vec<String>, PxeError> {
        let dir = self.root.join(id);
        let is_file = |name: &str| {
            !name.is_empty() && validate_name(name).is_ok() && dir.join(name).is_file()
        };
        let (kernel, initrd, image) = match self.manifest(id)? {
            Some(m) => (m.kernel, m.initrd, Some(m.image)),
            None => (DEFAULT_KERNEL.to_owned(), DEFAULT_INITRD.to_owned(), None),
        };
        let mut missing = Vec::new();
        for (what, name) in [("kernel", &kernel), ("initrd", &initrd)] {
            if !is_file(name) {
                missing.push(format!("{what} {name}"));
            }
        }
        match image {
            Some(image) if is_file(&image) => {}
            Some(image) if image.is_empty() => {
                missing.push(format!("disk image (none named in {MANIFEST})"));
            }
            Some(image) => missing.push(format!("disk image {image}")),
            None => {
                let xz: Vec<String> = disk_image_candidates(&dir)?
                    .into_iter()
                    .filter(|n| is_file(n))
                    .collect();
                match xz.len() {
                    1 => {}
                    0 => missing.push("disk image (one .xz file; found none)".to_owned()),
                    _ => missing.push(format!(
                        "disk image (one .xz file; found {}: {})",
                        xz.len(),
                        xz.join(", ")
                    )),
                }
            }
        }
        Ok(missing)
    }

    /// [`PxeError::NotInstallable`] when image dir `id` (the resolution of
    /// `os`) lacks a file its records would name
    /// ([`Self::missing_boot_files`]).
    pub fn check_installable(&self, os: &str, id: &str) -> Result<(), PxeError> {
        let missing = self.missing_boot_files(id)?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(PxeError::NotInstallable {
            os: os.to_owned(),
            dir: self.root.join(id),
            missing,
        })
    }
}

/// The `.xz` files of a hand-made image dir that may be its disk image
/// (not its initrd), sorted.
fn disk_image_candidates(dir: &Path) -> Result<Vec<String>, PxeError> {
    let mut xz: Vec<String> = fs::read_dir(dir)
        .map_err(PxeError::io("list", dir))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".xz") && !n.contains("initrd"))
        .collect();
    xz.sort();
    Ok(xz)
}

/// The files a record of one image names.
#[derive(Debug, Clone, PartialEq)]
pub struct BootFiles {
    /// The kernel's file name in the image dir.
    pub kernel: String,
    /// The install initrd's file name in the image dir.
    pub initrd: String,
    /// The disk image's file name (the `.xz` kiwi's initrd downloads); may be
    /// empty for a hand-made dir with none.
    pub image: String,
    /// The image's own kernel options (manifest's `kernel_options`).
    pub kernel_options: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_cmp("15.10", "15.9"), Ordering::Greater);
        assert_eq!(version_cmp("1.2.3", "1.2.3"), Ordering::Equal);
        assert_eq!(version_cmp("1.2", "1.2.1"), Ordering::Less);
        assert_eq!(version_cmp("0.1.1-29.1", "0.1.1-3.1"), Ordering::Greater);
    }

    #[test]
    fn servable_paths() {
        let d = tempfile::tempdir().unwrap();
        let c = Catalog::new(d.path());
        fs::create_dir_all(d.path().join("img-1/sub")).unwrap();
        fs::create_dir_all(d.path().join(".add-image.1.2")).unwrap();
        fs::create_dir_all(d.path().join("pxelinux.cfg")).unwrap();
        for f in [
            "img-1/a.xz",
            "img-1/sub/b",
            ".add-image.1.2/c.xz",
            "pxelinux.cfg/01-aa",
        ] {
            fs::write(d.path().join(f), "x").unwrap();
        }
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("escape")).unwrap();
        std::os::unix::fs::symlink("img-1", d.path().join("img")).unwrap();
        fs::write(d.path().join("top.txt"), "t").unwrap();
        std::os::unix::fs::symlink("../top.txt", d.path().join("img-1/top")).unwrap();
        std::os::unix::fs::symlink("../pxelinux.cfg/01-aa", d.path().join("img-1/rec")).unwrap();
        std::os::unix::fs::symlink("../.add-image.1.2/c.xz", d.path().join("img-1/st")).unwrap();
        let real = fs::canonicalize(d.path().join("img-1/a.xz")).unwrap();
        assert_eq!(c.servable("img/a.xz"), Some(real), "the resolved path");
        assert!(c.servable("img-1/a.xz").is_some());
        assert!(c.servable("/img-1/sub/b").is_some());
        assert!(c.servable("img/a.xz").is_some(), "symlink inside the root");
        for bad in [
            "img-1",
            "img-1/../img-1/a.xz",
            ".add-image.1.2/c.xz",
            "pxelinux.cfg/01-aa",
            "escape/secret",
            "img-1/nosuch",
            "",
            "img-1//a.xz",
            "img-1/",
            "top.txt",
            "img-1/top",
            "img-1/rec",
            "img-1/st",
        ] {
            assert!(c.servable(bad).is_none(), "{bad} servable");
        }
    }

    #[test]
    fn names_are_validated() {
        for bad in [
            "", "a/b", "..", "a..b", ".hidden", "a\nb", "a\u{7f}", "a b", "x\\y",
        ] {
            assert!(
                matches!(validate_name(bad), Err(PxeError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
        validate_name("sle-15.1-0.1.1-29.1").unwrap();
    }
}
