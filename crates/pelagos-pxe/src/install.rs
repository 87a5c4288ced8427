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

mod copy;
mod kiwi;

use self::copy::{Copied, CopyJob, RawDisk, copy_hashing};
use self::kiwi::{KiwiBase, KiwiChecksum, Outputs, is_disk_image, own_kernel_options};
use crate::catalog::{
    self, Catalog, DEFAULT_INITRD, DEFAULT_KERNEL, MANIFEST, Manifest, ManifestFile, RESERVED_DIRS,
};
use crate::error::PxeError;
use crate::os_release::{IMAGE_ID_FILE, OS_RELEASE_FILES, OsIdentity};
use crate::records::{LOCAL, MAINTENANCE};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Prefix of staging dirs in the root (hidden, so never resolvable).
pub const STAGING_PREFIX: &str = ".add-image.";

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
    /// An os-release file to take the image's `ID`/`VERSION_ID` from,
    /// instead of the one in kiwi's image root.
    pub os_release: Option<PathBuf>,
    /// kiwi's image id, instead of the image root's `/etc/ImageID`.
    pub image_id: Option<String>,
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

/// Install a kiwi OEM PXE build into the catalog at `root`.
pub fn install(
    root: &Path,
    source: &Path,
    opts: &InstallOptions,
    progress: &dyn Progress,
) -> Result<Manifest, PxeError> {
    check_options(opts)?;
    let os = os_identity(source, opts)?;
    let staging = Staging::create(root)?;
    let listing = Listing::read(source, &staging, progress)?;
    let outputs = Outputs::find(&listing.names, &listing.links, source)?;
    let identity = Identity::resolve(&outputs.base, opts, source)?;
    let install = Install::stage(root, source, staging, identity, &outputs)?;
    let staged = install.copy_files(&listing, progress)?;
    let checksum = install.verify_checksum(staged.raw_disk)?;
    let mut manifest = install.manifest(opts, staged.entries, &checksum)?;
    manifest.os = os;
    install.write_manifest(&manifest)?;
    install.publish(opts.set_current)?;
    Ok(manifest)
}

/// The names and version given on the command line, checked before
/// anything is touched.
fn check_options(opts: &InstallOptions) -> Result<(), PxeError> {
    for n in opts.name.iter().chain(&opts.aliases) {
        check_catalog_name(n)?;
    }
    if let Some(v) = &opts.version {
        catalog::validate_name(v)?;
    }
    Ok(())
}

/// Where kiwi leaves the image's root tree in its target dir.
pub const KIWI_IMAGE_ROOT: &str = "build/image-root";

/// The image's OS identity ([`OsIdentity`]): `ID` and `VERSION_ID` from
/// `opts.os_release`, else from the os-release of kiwi's image root
/// (`<source>/build/image-root`, `etc/os-release` then `usr/lib/os-release`);
/// the image id from `opts.image_id`, else that root's `etc/ImageID` (empty
/// when missing). `None` when neither tells the os-release (an install tar
/// without `--os-release`): the image is installed, and provisions of it
/// cannot verify the OS. A value that cannot be recorded is refused.
fn os_identity(source: &Path, opts: &InstallOptions) -> Result<Option<OsIdentity>, PxeError> {
    let image_root = source.join(KIWI_IMAGE_ROOT);
    let image_root = fs::metadata(&image_root)
        .is_ok_and(|m| m.is_dir())
        .then_some(image_root);
    let os_release = match (&opts.os_release, &image_root) {
        (Some(file), _) => Some(fs::read_to_string(file).map_err(PxeError::io("read", file))?),
        (None, Some(root)) => {
            let mut found = None;
            for rel in OS_RELEASE_FILES {
                if let Some(text) = read_in_root(root, rel)? {
                    found = Some(text);
                    break;
                }
            }
            found
        }
        (None, None) => None,
    };
    let image_id = match (&opts.image_id, &image_root) {
        (Some(id), _) => id.clone(),
        (None, Some(root)) => read_in_root(root, IMAGE_ID_FILE)?.unwrap_or_default(),
        (None, None) => String::new(),
    };
    let Some(os_release) = os_release else {
        if opts.image_id.is_some() {
            return Err(PxeError::KiwiOutput {
                path: source.to_owned(),
                message: format!(
                    "an image id needs the image's os-release: no {KIWI_IMAGE_ROOT} here; pass --os-release"
                ),
            });
        }
        tracing::warn!(
            source = %source.display(),
            "no os-release (no {KIWI_IMAGE_ROOT}, no --os-release): the manifest records no OS identity, provisions cannot verify the booted OS"
        );
        return Ok(None);
    };
    let os = OsIdentity::from_os_release(&os_release, &image_id);
    os.check()?;
    Ok(Some(os))
}

/// The text of `rel` inside the image root `root`, following symlinks
/// inside the root (an absolute `/usr/lib/os-release` target is the
/// root's, not this host's); `None` when missing.
fn read_in_root(root: &Path, rel: &str) -> Result<Option<String>, PxeError> {
    let mut path = root.join(rel);
    for _ in 0..8 {
        match fs::read_link(&path) {
            Ok(target) if target.is_absolute() => {
                path = root.join(target.strip_prefix("/").unwrap_or(&target));
            }
            Ok(target) => {
                let dir = path.parent().unwrap_or(root).to_owned();
                path = dir.join(target);
            }
            Err(_) => break,
        }
    }
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PxeError::io("read", path)(e)),
    }
}

/// This install's hidden dir in the root,
/// `.add-image.<pid>.<nanoseconds>/`; removed when dropped.
struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Create the root if need be, remove dead installs' leftovers, and
    /// make this install's staging dir.
    fn create(root: &Path) -> Result<Self, PxeError> {
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
        Ok(staging)
    }
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
    let entries: Vec<PathBuf> = fs::read_dir(source)
        .map_err(PxeError::io("list", source))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let tars: Vec<PathBuf> = entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".install.tar"))
        .cloned()
        .collect();
    let has_xz = entries
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
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

/// A listing of the kiwi output, and where its files are taken from.
struct Listing {
    /// The regular files.
    names: BTreeSet<String>,
    /// The symlinks: name → the target's file name.
    links: BTreeMap<String, String>,
    files: ListedFiles,
}

enum ListedFiles {
    /// A build dir, copied from in place.
    InPlace(PathBuf),
    /// An install tar, unpacked into staging (hashing on the way).
    Unpacked {
        dir: PathBuf,
        copied: BTreeMap<String, Copied>,
    },
}

impl Listing {
    /// A dir is read in place; a tar is unpacked into `<staging>/src` first.
    fn read(source: &Path, staging: &Staging, progress: &dyn Progress) -> Result<Self, PxeError> {
        match classify(source)? {
            Source::Dir(dir) => Self::read_dir(dir),
            Source::Tar(tar) => Self::unpack_tar(&tar, staging.dir.join("src"), progress),
        }
    }

    fn read_dir(dir: PathBuf) -> Result<Self, PxeError> {
        let mut names = BTreeSet::new();
        let mut links = BTreeMap::new();
        for e in fs::read_dir(&dir).map_err(PxeError::io("list", &dir))? {
            let e = e.map_err(PxeError::io("list", &dir))?;
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
        Ok(Listing {
            names,
            links,
            files: ListedFiles::InPlace(dir),
        })
    }

    fn unpack_tar(tar: &Path, dir: PathBuf, progress: &dyn Progress) -> Result<Self, PxeError> {
        fs::create_dir(&dir).map_err(PxeError::io("create", &dir))?;
        let f = File::open(tar).map_err(PxeError::io("open", tar))?;
        let mut ar = ::tar::Archive::new(f);
        let bad = |e: io::Error| PxeError::KiwiOutput {
            path: tar.to_owned(),
            message: format!("not a readable tar archive: {e}"),
        };
        let mut names = BTreeSet::new();
        let mut links = BTreeMap::new();
        let mut copied = BTreeMap::new();
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
                let job = CopyJob {
                    label: &n,
                    total: entry.header().size().unwrap_or(0),
                    xz: is_disk_image(&n),
                    id: &n,
                };
                let c = copy_hashing(entry, &dir.join(&n), job, progress)?;
                copied.insert(n.clone(), c);
                names.insert(n);
            }
        }
        Ok(Listing {
            names,
            links,
            files: ListedFiles::Unpacked { dir, copied },
        })
    }

    /// Put kiwi file `from` at `to`: moved out of the unpacked tar, or
    /// copied from the build dir, hashing (and decompressing the xz stream
    /// into md5 when `xz`); `id` is what an interruption names.
    fn bring(
        &self,
        from: &str,
        to: &Path,
        xz: bool,
        id: &str,
        progress: &dyn Progress,
    ) -> Result<Copied, PxeError> {
        match &self.files {
            ListedFiles::Unpacked { dir, copied } => {
                fs::rename(dir.join(from), to).map_err(PxeError::io("move", to))?;
                Ok(copied.get(from).cloned().unwrap_or_default())
            }
            ListedFiles::InPlace(dir) => {
                let p = dir.join(from);
                let f = File::open(&p).map_err(PxeError::io("open", &p))?;
                let total = f.metadata().map(|m| m.len()).unwrap_or(0);
                let job = CopyJob {
                    label: from,
                    total,
                    xz,
                    id,
                };
                copy_hashing(f, to, job, progress)
            }
        }
    }
}

/// Who the image is in the catalog.
struct Identity {
    name: String,
    version: String,
    /// kiwi's; empty when the base name did not tell.
    arch: String,
    /// `<name>-<version>`, the image dir's name.
    id: String,
}

impl Identity {
    /// Name and version from the options, else from kiwi's `base` name;
    /// `source` names the build in errors.
    fn resolve(base: &str, opts: &InstallOptions, source: &Path) -> Result<Self, PxeError> {
        let parsed = KiwiBase::split(base);
        let cannot_tell = |what: &str, pass: &str| PxeError::KiwiOutput {
            path: source.to_owned(),
            message: format!("cannot tell {what} from [{base}]; pass {pass}"),
        };
        let name = opts
            .name
            .clone()
            .or_else(|| parsed.as_ref().map(|p| p.name.clone()))
            .ok_or_else(|| cannot_tell("name and version", "--name and --version"))?;
        let version = opts
            .version
            .clone()
            .or_else(|| parsed.as_ref().map(|p| p.version.clone()))
            .ok_or_else(|| cannot_tell("the version", "--version"))?;
        let arch = parsed.map(|p| p.arch).unwrap_or_default();
        check_catalog_name(&name)?;
        catalog::validate_name(&version)?;
        let id = format!("{name}-{version}");
        catalog::validate_name(&id)?;
        Ok(Identity {
            name,
            version,
            arch,
            id,
        })
    }
}

/// One file of the image: its name in the kiwi output and in the image dir.
struct ImageFile {
    from: String,
    to: String,
}

impl ImageFile {
    /// Installed under its kiwi name.
    fn kept(name: &str) -> Self {
        ImageFile {
            from: name.to_owned(),
            to: name.to_owned(),
        }
    }
}

/// The image's files by role.
struct ImageFiles {
    /// The kernel, as `pxeboot.kernel` for the boot loader.
    kernel: ImageFile,
    /// kiwi's install initrd, as `pxeboot.initrd.xz` (or `pxeboot.initrd`).
    initrd: ImageFile,
    /// The xz-compressed disk.
    disk_image: ImageFile,
    /// kiwi's checksum of the decompressed disk.
    md5: ImageFile,
    /// The installed system's initrd, for kiwi-dump's kexec.
    system_initrd: ImageFile,
    /// kiwi's kernel options, with its placeholders.
    append: Option<ImageFile>,
    /// The installed system's boot options.
    bootoptions: Option<ImageFile>,
}

impl ImageFiles {
    fn new(outputs: &Outputs) -> Self {
        let initrd_to = if outputs.initrd.ends_with(".xz") {
            DEFAULT_INITRD
        } else {
            "pxeboot.initrd"
        };
        ImageFiles {
            kernel: ImageFile {
                from: outputs.kernel.clone(),
                to: DEFAULT_KERNEL.to_owned(),
            },
            initrd: ImageFile {
                from: outputs.initrd.clone(),
                to: initrd_to.to_owned(),
            },
            disk_image: ImageFile::kept(&outputs.image),
            md5: ImageFile::kept(&outputs.md5),
            system_initrd: ImageFile::kept(&outputs.system_initrd),
            append: outputs.append.as_deref().map(ImageFile::kept),
            bootoptions: outputs.bootoptions.as_deref().map(ImageFile::kept),
        }
    }
}

/// The staged image's files: their manifest entries, in install order.
struct StagedFiles {
    entries: Vec<ManifestFile>,
    /// The decompressed disk image's md5 and length.
    raw_disk: Option<RawDisk>,
}

/// One install under way: its files staged as `<staging>/<id>/` until
/// [`Install::publish`] renames that to `<root>/<id>/`.
struct Install<'a> {
    root: &'a Path,
    /// The build dir or install tar given; named in errors and the manifest.
    source: &'a Path,
    image: Identity,
    /// kiwi's `<name>.<arch>-<version>`.
    base: String,
    files: ImageFiles,
    /// The image dir being filled, `<staging>/<id>`.
    staged: PathBuf,
    /// Where it appears, `<root>/<id>`.
    dest: PathBuf,
    /// Removes the staging dir on any failure before publishing.
    staging: Staging,
}

impl<'a> Install<'a> {
    /// Refuse an id already installed, then make the staged image dir.
    fn stage(
        root: &'a Path,
        source: &'a Path,
        staging: Staging,
        image: Identity,
        outputs: &Outputs,
    ) -> Result<Self, PxeError> {
        let dest = root.join(&image.id);
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(PxeError::AlreadyInstalled {
                id: image.id,
                path: dest,
            });
        }
        let staged = staging.dir.join(&image.id);
        fs::create_dir(&staged).map_err(PxeError::io("create", &staged))?;
        Ok(Install {
            root,
            source,
            image,
            base: outputs.base.clone(),
            files: ImageFiles::new(outputs),
            staged,
            dest,
            staging,
        })
    }

    /// The files into the staged dir under their installed names, then the
    /// kexec kernel beside them.
    fn copy_files(
        &self,
        listing: &Listing,
        progress: &dyn Progress,
    ) -> Result<StagedFiles, PxeError> {
        let f = &self.files;
        let mut entries = Vec::new();
        let mut copy = |file: &ImageFile| -> Result<Copied, PxeError> {
            let to = self.staged.join(&file.to);
            let xz = file.from == f.disk_image.from;
            let copied = listing.bring(&file.from, &to, xz, &self.image.id, progress)?;
            entries.push(copied.entry(&file.to));
            Ok(copied)
        };
        let kernel = copy(&f.kernel)?;
        copy(&f.initrd)?;
        let raw_disk = copy(&f.disk_image)?.raw;
        copy(&f.md5)?;
        copy(&f.system_initrd)?;
        for file in f.append.iter().chain(&f.bootoptions) {
            copy(file)?;
        }
        entries.push(self.link_kexec_kernel(&kernel)?);
        Ok(StagedFiles { entries, raw_disk })
    }

    /// kiwi-dump derives `<image>.md5`, `<image>.kernel` and
    /// `<image>.initrd` from `rd.kiwi.install.image=<image>.xz` and fetches
    /// all three (the kernel and initrd to kexec the installed system): the
    /// kernel goes beside the image under kiwi's name too, as a hard link
    /// (a copy where linking fails).
    fn link_kexec_kernel(&self, kernel: &Copied) -> Result<ManifestFile, PxeError> {
        let name = format!("{}.kernel", self.base);
        let from = self.staged.join(&self.files.kernel.to);
        let to = self.staged.join(&name);
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(PxeError::io("copy", &to))?;
        }
        Ok(kernel.entry(&name))
    }

    /// kiwi's checksum is of the decompressed disk: its md5 and, when the
    /// file gives blocks and blocksize, its length. Returns the checksum
    /// file's text.
    fn verify_checksum(&self, raw_disk: Option<RawDisk>) -> Result<String, PxeError> {
        let md5 = &self.files.md5;
        let path = self.staged.join(&md5.to);
        let text = fs::read_to_string(&path).map_err(PxeError::io("read", &path))?;
        let expected = KiwiChecksum::parse(&text, &self.source.join(&md5.from))?;
        let actual = raw_disk.unwrap_or_default();
        let file = self.source.join(&self.files.disk_image.from);
        if actual.md5 != expected.md5 {
            return Err(PxeError::Checksum {
                file,
                expected: expected.md5,
                actual: actual.md5,
            });
        }
        if let Some(n) = expected.bytes.filter(|n| *n != actual.len) {
            return Err(PxeError::Checksum {
                file,
                expected: format!("{n} bytes (blocks x blocksize in {})", md5.from),
                actual: format!("{} bytes", actual.len),
            });
        }
        Ok(text)
    }

    /// The staged image's manifest, listing `files`; `checksum` is the
    /// text of kiwi's checksum file.
    fn manifest(
        &self,
        opts: &InstallOptions,
        files: Vec<ManifestFile>,
        checksum: &str,
    ) -> Result<Manifest, PxeError> {
        let append = self.read_text(self.files.append.as_ref())?;
        let bootoptions = self.read_text(self.files.bootoptions.as_ref())?;
        Ok(Manifest {
            name: self.image.name.clone(),
            version: self.image.version.clone(),
            arch: self.image.arch.clone(),
            aliases: opts.aliases.clone(),
            kernel: self.files.kernel.to.clone(),
            initrd: self.files.initrd.to.clone(),
            image: self.files.disk_image.to.clone(),
            image_md5: checksum.trim().to_owned(),
            kernel_options: own_kernel_options(&append),
            config_bootoptions: bootoptions,
            files,
            installed: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source: self.source.display().to_string(),
            os: None,
        })
    }

    /// A small staged text file, trimmed; empty when kiwi made none.
    fn read_text(&self, file: Option<&ImageFile>) -> Result<String, PxeError> {
        let Some(file) = file else {
            return Ok(String::new());
        };
        let p = self.staged.join(&file.to);
        Ok(fs::read_to_string(&p)
            .map_err(PxeError::io("read", &p))?
            .trim()
            .to_owned())
    }

    /// `image.json` into the staged dir, and the dir fsynced.
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), PxeError> {
        let path = self.staged.join(MANIFEST);
        let json = serde_json::to_string_pretty(manifest).map_err(|e| PxeError::Manifest {
            path: path.clone(),
            message: e.to_string(),
        })?;
        pelagos_config::atomic::write_atomic(&path, json.as_bytes())
            .map_err(PxeError::io("write", &path))?;
        fsync_dir(&self.staged)
    }

    /// Appear at once (one rename), remove the staging dir, then flip the
    /// symlink when `make_current` or when the name has no current version.
    fn publish(self, make_current: bool) -> Result<(), PxeError> {
        fs::rename(&self.staged, &self.dest)
            .map_err(PxeError::io("rename into place", &self.dest))?;
        fsync_dir(self.root)?;
        drop(self.staging);
        let catalog = Catalog::new(self.root);
        if make_current || catalog.symlink_target(&self.image.name).is_none() {
            set_current(self.root, &self.image.id)?;
        }
        tracing::info!(id = self.image.id, root = %self.root.display(), "image installed");
        Ok(())
    }
}

/// [`pelagos_config::atomic::sync_dir`] as a [`PxeError`]: after every
/// rename or removal in the root, so a power loss cannot undo it.
fn fsync_dir(dir: &Path) -> Result<(), PxeError> {
    pelagos_config::atomic::sync_dir(dir).map_err(PxeError::io("fsync", dir))
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
        move_current_to_newest(&catalog, root, n)?;
    }
    fs::remove_dir_all(&gone).map_err(PxeError::io("remove", &gone))?;
    tracing::info!(id, "image removed");
    Ok(())
}

/// Point symlink `name`, whose version went, at the newest remaining
/// version of it, or remove it when none remains.
fn move_current_to_newest(catalog: &Catalog, root: &Path, name: &str) -> Result<(), PxeError> {
    let next = catalog
        .images()?
        .into_iter()
        .filter(|e| e.manifest.name == name)
        .max_by(|a, b| catalog::version_cmp(&a.manifest.version, &b.manifest.version));
    match next {
        Some(e) => set_current(root, &e.id),
        None => {
            let link = root.join(name);
            fs::remove_file(&link).map_err(PxeError::io("remove", &link))?;
            fsync_dir(root)
        }
    }
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

    fn outputs(initrd: &str) -> Outputs {
        let base = "leap.x86_64-1.0";
        Outputs {
            base: base.into(),
            image: format!("{base}.xz"),
            md5: format!("{base}.md5"),
            kernel: format!("pxeboot.{base}.kernel"),
            initrd: initrd.into(),
            system_initrd: format!("{base}.initrd"),
            append: None,
            bootoptions: Some(format!("{base}.config.bootoptions")),
        }
    }

    #[test]
    fn files_keep_kiwi_names_but_boot_files() {
        let f = ImageFiles::new(&outputs("pxeboot.leap.x86_64-1.0.initrd.xz"));
        assert_eq!(
            (f.kernel.to.as_str(), f.initrd.to.as_str()),
            (DEFAULT_KERNEL, DEFAULT_INITRD)
        );
        for kept in [&f.disk_image, &f.md5, &f.system_initrd] {
            assert_eq!(kept.from, kept.to);
        }
        assert!(f.append.is_none());
        assert_eq!(
            f.bootoptions.map(|b| b.to).as_deref(),
            Some("leap.x86_64-1.0.config.bootoptions")
        );
        // An uncompressed install initrd keeps its kind in its name.
        let f = ImageFiles::new(&outputs("pxeboot.leap.x86_64-1.0.initrd"));
        assert_eq!(f.initrd.to, "pxeboot.initrd");
    }

    #[test]
    fn identity_from_options_or_base_name() {
        let src = Path::new("/build");
        let none = InstallOptions::default();
        let i = Identity::resolve("leap.x86_64-1.0", &none, src).unwrap();
        assert_eq!(
            (
                i.name.as_str(),
                i.version.as_str(),
                i.arch.as_str(),
                i.id.as_str()
            ),
            ("leap", "1.0", "x86_64", "leap-1.0")
        );
        let e = Identity::resolve("noarch-name", &none, src).err().unwrap();
        assert!(e.to_string().contains("--name and --version"), "{e}");
        let named = InstallOptions {
            name: Some("x".into()),
            ..Default::default()
        };
        let e = Identity::resolve("noarch-name", &named, src).err().unwrap();
        assert!(e.to_string().contains("pass --version"), "{e}");
        let both = InstallOptions {
            version: Some("2".into()),
            ..named
        };
        let i = Identity::resolve("noarch-name", &both, src).unwrap();
        assert_eq!((i.id.as_str(), i.arch.as_str()), ("x-2", ""));
    }
}
