//! Copying one file into staging while hashing it (and, for the disk
//! image, decompressing it into md5 to check kiwi's checksum).

use super::Progress;
use crate::catalog::ManifestFile;
use crate::error::PxeError;
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// md5 and length of the decompressed disk image.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct RawDisk {
    pub md5: String,
    pub len: u64,
}

/// Sizes and digests of one copied file.
#[derive(Debug, Clone, Default)]
pub(super) struct Copied {
    pub size: u64,
    pub sha256: String,
    /// For the disk image: the decompressed xz stream.
    pub raw: Option<RawDisk>,
}

impl Copied {
    /// Its manifest entry, installed as `name`.
    pub fn entry(&self, name: &str) -> ManifestFile {
        ManifestFile {
            name: name.to_owned(),
            size: self.size,
            sha256: self.sha256.clone(),
        }
    }
}

/// What [`copy_hashing`] copies, as progress and errors name it.
pub(super) struct CopyJob<'a> {
    /// The file's kiwi name: the progress line, read and xz errors.
    pub label: &'a str,
    /// Its expected size, for the progress bar.
    pub total: u64,
    /// Decompress the xz stream into md5 (the disk image).
    pub xz: bool,
    /// What [`PxeError::Interrupted`] names.
    pub id: &'a str,
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
/// the xz stream into md5 when `job.xz` is set), then fsync.
pub(super) fn copy_hashing(
    mut src: impl Read,
    dest: &Path,
    job: CopyJob<'_>,
    progress: &dyn Progress,
) -> Result<Copied, PxeError> {
    let mut out = File::create_new(dest).map_err(PxeError::io("create", dest))?;
    let mut sha = Sha256::new();
    let mut dec = job.xz.then(|| {
        liblzma::write::XzDecoder::new_multi_decoder(Md5Sink {
            md5: Md5::new(),
            len: 0,
        })
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    progress.start(job.label, job.total);
    loop {
        let n = src
            .read(&mut buf)
            .map_err(PxeError::io("read", job.label))?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        out.write_all(chunk).map_err(PxeError::io("write", dest))?;
        sha.update(chunk);
        if let Some(d) = dec.as_mut() {
            d.write_all(chunk).map_err(|e| PxeError::KiwiOutput {
                path: PathBuf::from(job.label),
                message: format!("not a valid xz stream: {e}"),
            })?;
        }
        size += n as u64;
        if progress.advance(n as u64).is_break() {
            return Err(PxeError::Interrupted {
                id: job.id.to_owned(),
            });
        }
    }
    out.sync_all().map_err(PxeError::io("fsync", dest))?;
    progress.finish();
    let raw = match dec {
        Some(d) => {
            let sink = d.finish().map_err(|e| PxeError::KiwiOutput {
                path: PathBuf::from(job.label),
                message: format!("truncated or invalid xz stream: {e}"),
            })?;
            Some(RawDisk {
                md5: hex(&sink.md5.finalize()),
                len: sink.len,
            })
        }
        None => None,
    };
    Ok(Copied {
        size,
        sha256: hex(&sha.finalize()),
        raw,
    })
}
