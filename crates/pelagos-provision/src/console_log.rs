//! A [`Console`] over conman log files: `<dir>/console.<short name>`, read
//! incrementally from a saved offset. Production points it at conmand's log
//! dir; the simulated lab at the files its simulated consoles write. Both go
//! through this same code.

use crate::drivers::{Console, ConsoleSnapshot, ConsoleWatch, DriverError};
use async_trait::async_trait;
use pelagos_config::Node;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use tokio::time::Instant;

/// Read at most this much of a file's tail at once: the last meaningful line
/// is all we want, and a long-idle watcher must not load a huge log.
const MAX_READ: u64 = 64 * 1024;

/// conman logs in one directory.
#[derive(Debug, Clone)]
pub struct ConmanLogConsole {
    dir: PathBuf,
}

impl ConmanLogConsole {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<dir>/console.<short name>`.
    pub fn log_path(&self, node: &Node) -> PathBuf {
        self.dir.join(format!("console.{}", node.short_name()))
    }
}

#[async_trait]
impl Console for ConmanLogConsole {
    async fn watch(&self, node: &Node) -> Result<Box<dyn ConsoleWatch>, DriverError> {
        let mut w = LogWatch {
            path: self.log_path(node),
            offset: 0,
            ino: None,
            partial: Vec::new(),
            last_line: None,
            changed_at: Instant::now(),
        };
        // What is already there sets the starting line, as `tail` did.
        w.read_new();
        w.changed_at = Instant::now();
        Ok(Box::new(w))
    }
}

struct LogWatch {
    path: PathBuf,
    offset: u64,
    ino: Option<u64>,
    partial: Vec<u8>,
    last_line: Option<String>,
    changed_at: Instant,
}

impl LogWatch {
    /// Consume appended bytes; a missing file reads as nothing new.
    fn read_new(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let Ok(meta) = f.metadata() else { return };
        let (ino, size) = (meta.ino(), meta.size());
        if self.ino != Some(ino) || size < self.offset {
            // New, rotated or truncated file: start over.
            self.ino = Some(ino);
            self.offset = 0;
            self.partial.clear();
        }
        if size == self.offset {
            return;
        }
        let mut start = self.offset;
        let mut skip_first = false;
        if size - start > MAX_READ {
            start = size - MAX_READ;
            skip_first = true;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(start)).is_err() {
            return;
        }
        let mut buf = Vec::with_capacity((size - start) as usize);
        if f.take(size - start).read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset = start + buf.len() as u64;
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(&buf);
        let mut lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
        let rest = lines.pop().unwrap_or_default().to_vec();
        if skip_first && !lines.is_empty() {
            lines.remove(0);
        }
        let newest = lines
            .iter()
            .rev()
            .map(|l| String::from_utf8_lossy(l))
            .find(|l| is_meaningful(l))
            .map(|l| l.trim_end().to_owned());
        // Keep an unfinished line for the next read, but never let it grow.
        self.partial = if rest.len() as u64 > MAX_READ {
            Vec::new()
        } else {
            rest
        };
        if let Some(line) = newest
            && self.last_line.as_deref() != Some(line.as_str())
        {
            self.last_line = Some(line);
            self.changed_at = Instant::now();
        }
    }
}

#[async_trait]
impl ConsoleWatch for LogWatch {
    async fn poll(&mut self) -> Result<ConsoleSnapshot, DriverError> {
        self.read_new();
        Ok(ConsoleSnapshot {
            last_line: self.last_line.clone(),
            unchanged_for: self.changed_at.elapsed(),
        })
    }

    fn reset(&mut self) {
        self.changed_at = Instant::now();
    }
}

/// A console line that says something about the boot: not empty, not a
/// conman `<ConMan> ...` notice, not a bare `YYYY-MM-DD HH:MM:SS` timestamp.
pub fn is_meaningful(line: &str) -> bool {
    let l = line.trim();
    !(l.is_empty() || l.starts_with("<ConMan>") || is_bare_timestamp(l))
}

fn is_bare_timestamp(l: &str) -> bool {
    let b = l.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() < 19 {
        return false;
    }
    let date_ok = digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    let rest = l[10..].trim_start();
    let rb = rest.as_bytes();
    date_ok
        && l.as_bytes()[10].is_ascii_whitespace()
        && rb.len() == 8
        && rb[2] == b':'
        && rb[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&i| rb[i].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn meaningful_lines() {
        assert!(is_meaningful("[    1.234] Linux version 6.4"));
        assert!(is_meaningful("2026-11-24 16:40:07 boot line 0"));
        assert!(!is_meaningful("   \r"));
        assert!(!is_meaningful(
            "<ConMan> Console [n1] log opened at 2026-11-24 16:40:07 UTC."
        ));
        assert!(!is_meaningful("2026-11-24 16:40:07"));
        assert!(!is_meaningful("2026-11-24  16:40:07  \r"));
    }

    fn node(name: &str) -> Node {
        let lab = pelagos_config::LabConfig::parse(&format!(
            r#"{{"nodes":[{{"node":"{name}","mac":"aa:bb:cc:dd:ee:01"}}]}}"#
        ))
        .unwrap();
        lab.nodes[0].clone()
    }

    #[tokio::test(start_paused = true)]
    async fn follows_appends_truncation_and_ages() {
        let d = tempfile::tempdir().unwrap();
        let console = ConmanLogConsole::new(d.path());
        let n = node("n1.lab");
        let path = console.log_path(&n);
        assert!(path.ends_with("console.n1"));
        std::fs::write(&path, "<ConMan> Console [n1] log opened\r\nold line\r\n").unwrap();
        let mut w = console.watch(&n).await.unwrap();
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("old line"));

        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"half").unwrap();
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("old line"));
        assert!(s.unchanged_for >= std::time::Duration::from_secs(5));
        f.write_all(b" a line\r\n2026-11-24 16:40:07\r\n\r\n")
            .unwrap();
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("half a line"));
        assert_eq!(s.unchanged_for, std::time::Duration::ZERO);

        // Truncated (log rotated in place): read from the start again.
        std::fs::write(&path, "fresh\n").unwrap();
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("fresh"));

        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        w.reset();
        assert_eq!(
            w.poll().await.unwrap().unchanged_for,
            std::time::Duration::ZERO
        );
    }

    #[tokio::test]
    async fn missing_file_has_no_line() {
        let d = tempfile::tempdir().unwrap();
        let console = ConmanLogConsole::new(d.path());
        let mut w = console.watch(&node("n2")).await.unwrap();
        assert_eq!(w.poll().await.unwrap().last_line, None);
    }
}
