//! What install knows of kiwi's output: which files it holds under which
//! names, its `<name>.<arch>-<version>` base name, its checksum file and its
//! kernel options.

use crate::error::PxeError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Architectures kiwi puts between image name and version.
const ARCHES: &[&str] = &[
    "x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "i686", "i586", "armv7l", "riscv64",
];

/// Whether file `n` of a kiwi output is the xz-compressed disk image.
pub(super) fn is_disk_image(n: &str) -> bool {
    n.ends_with(".xz") && !n.starts_with("pxeboot.") && !n.contains(".initrd")
}

/// The kiwi output files chosen from a listing.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outputs {
    /// kiwi's `<name>.<arch>-<version>`.
    pub base: String,
    /// `<base>.xz`, the compressed disk.
    pub image: String,
    /// `<base>.md5`, the checksum of the decompressed disk.
    pub md5: String,
    pub kernel: String,
    /// The install initrd.
    pub initrd: String,
    /// The installed system's initrd; kiwi-dump fetches it for kexec.
    pub system_initrd: String,
    pub append: Option<String>,
    pub bootoptions: Option<String>,
}

impl Outputs {
    /// Choose the outputs from a listing: file `names`, and `links`
    /// (symlink name → target name); `origin` names the source in errors.
    pub fn find(
        names: &BTreeSet<String>,
        links: &BTreeMap<String, String>,
        origin: &Path,
    ) -> Result<Self, PxeError> {
        let err = |message: String| PxeError::KiwiOutput {
            path: origin.to_owned(),
            message,
        };
        let images: Vec<&String> = names.iter().filter(|n| is_disk_image(n)).collect();
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
}

/// kiwi's `<name>.<arch>-<version>` split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KiwiBase {
    pub name: String,
    pub arch: String,
    pub version: String,
}

impl KiwiBase {
    /// `None` when no known arch separates a non-empty name and version.
    pub fn split(base: &str) -> Option<Self> {
        ARCHES.iter().find_map(|arch| {
            let (name, version) = base.rsplit_once(&format!(".{arch}-"))?;
            (!name.is_empty() && !version.is_empty()).then(|| KiwiBase {
                name: name.to_owned(),
                arch: (*arch).to_owned(),
                version: version.to_owned(),
            })
        })
    }
}

/// The image's own kernel options: kiwi's `.append` without the
/// `rd.kiwi.install.pxe` / `rd.kiwi.install.image=` placeholders.
pub(super) fn own_kernel_options(append: &str) -> String {
    append
        .split_whitespace()
        .filter(|w| *w != "rd.kiwi.install.pxe" && !w.starts_with("rd.kiwi.install.image="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// kiwi's checksum file: `<md5> [<blocks> <blocksize> ...]`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KiwiChecksum {
    /// md5 of the decompressed disk, lower case.
    pub md5: String,
    /// blocks x blocksize, when both are given.
    pub bytes: Option<u64>,
}

impl KiwiChecksum {
    /// Parse the checksum file's `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PxeError> {
        let mut words = text.split_whitespace();
        let md5 = words.next().unwrap_or_default().to_ascii_lowercase();
        if md5.len() != 32 || !md5.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PxeError::KiwiOutput {
                path: path.to_owned(),
                message: format!("first word [{md5}] is not an md5 sum"),
            });
        }
        let nums: Vec<u64> = words.take(2).filter_map(|w| w.parse().ok()).collect();
        let bytes = match nums.as_slice() {
            [blocks, blocksize] => Some(blocks * blocksize),
            _ => None,
        };
        Ok(KiwiChecksum { md5, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiwi_base_names_split() {
        let split = |b: &str| KiwiBase::split(b).map(|k| (k.name, k.arch, k.version));
        assert_eq!(
            split("opensuse-leap.x86_64-15.6.0"),
            Some(("opensuse-leap".into(), "x86_64".into(), "15.6.0".into()))
        );
        assert_eq!(
            split("LimeJeOS-Leap-15.6.aarch64-1.15.6"),
            Some((
                "LimeJeOS-Leap-15.6".into(),
                "aarch64".into(),
                "1.15.6".into()
            ))
        );
        assert_eq!(split("noarch-name"), None);
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
        let c = KiwiChecksum::parse("D41D8CD98F00B204E9800998ECF8427E 4 512\n", p).unwrap();
        assert_eq!(c.md5, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(c.bytes, Some(2048));
        assert!(KiwiChecksum::parse("nothex 1 2", p).is_err());
    }
}
