//! Atomic file writes: a reader (TFTP, dnsmasq, conmand) sees the old file or
//! the new one, never half of either; and once the write returns, a power
//! loss cannot bring the old one back (the directory is fsynced after the
//! rename, see [`sync_dir`]).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Write `contents` to `path` through a temp file in the same directory, fsync
/// it, rename it over `path`, and fsync the directory so the rename is
/// durable. Parent directories are created as needed. On an error before the
/// rename the temp file is removed and `path` is untouched; an error of the
/// final directory fsync means the new contents are in place but may not
/// survive a power loss.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, contents, 0o644)
}

/// [`write_atomic`] with the file's Unix permission bits: the temp file is
/// created with `mode` (then masked by the umask and set exactly), so a 0600
/// file holding a password is never readable by others, not even briefly.
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    let result = (|| {
        let mut f = create_with_mode(&tmp, mode)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

/// fsync the directory `dir`, making the renames, creations and removals of
/// its entries durable: without it a power loss after a rename can bring the
/// old file back (or a removed one). Call it after every rename or removal
/// that someone relies on. File systems that cannot fsync a directory
/// (`EINVAL`) are taken as done; a no-op off Unix.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match fs::File::open(dir).and_then(|f| f.sync_all()) {
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
            r => r,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
fn create_with_mode(path: &Path, mode: u32) -> io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // Exactly `mode` for restrictive files; wider modes stay under the umask.
    if mode & 0o077 == 0 {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(f)
}

#[cfg(not(unix))]
fn create_with_mode(path: &Path, _mode: u32) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_leaving_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/file.conf");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp files left behind: {names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn restrictive_mode_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secret.conf");
        write_atomic(&p, b"open").unwrap();
        write_atomic_mode(&p, b"pw", 0o600).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn sync_dir_syncs_a_dir_and_reports_a_missing_one() {
        let d = tempfile::tempdir().unwrap();
        sync_dir(d.path()).unwrap();
        assert!(sync_dir(&d.path().join("missing")).is_err());
    }

    #[test]
    fn failure_leaves_target_alone() {
        let d = tempfile::tempdir().unwrap();
        // A directory where the file should go makes the rename fail.
        let p = d.path().join("x");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("keep"), "k").unwrap();
        assert!(write_atomic(&p, b"new").is_err());
        assert!(p.is_dir());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
