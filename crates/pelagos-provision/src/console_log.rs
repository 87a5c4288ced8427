//! A [`Console`] over conman log files, `<dir>/console.<short name>`,
//! followed by `pelagos-conman`'s incremental tail. Production points it at
//! conmand's log dir; the simulated lab at the files its simulated consoles
//! write. Both go through this same code.

use crate::drivers::{Console, ConsoleSnapshot, ConsoleWatch, DriverError};
use async_trait::async_trait;
use pelagos_config::Node;
use std::path::PathBuf;

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
        pelagos_conman::log_path(&self.dir, node.short_name())
    }
}

#[async_trait]
impl Console for ConmanLogConsole {
    async fn watch(&self, node: &Node) -> Result<Box<dyn ConsoleWatch>, DriverError> {
        // The engine judges stalls itself from `unchanged_for`; the watch's
        // own max age is unused.
        let w = pelagos_conman::ConsoleWatch::open(
            self.log_path(node),
            pelagos_conman::DEFAULT_MAX_AGE,
        )
        .map_err(|e| DriverError::new("console", node, e.to_string()))?;
        Ok(Box::new(LogWatch(w)))
    }
}

struct LogWatch(pelagos_conman::ConsoleWatch);

#[async_trait]
impl ConsoleWatch for LogWatch {
    async fn poll(&mut self) -> Result<ConsoleSnapshot, DriverError> {
        self.0.poll_now();
        Ok(ConsoleSnapshot {
            last_line: self.0.newest_text().map(str::to_owned),
            unchanged_for: self.0.quiet_for(),
        })
    }

    fn reset(&mut self) {
        self.0.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("old line"));
        assert!(s.unchanged_for >= std::time::Duration::from_secs(5));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // An unfinished line is output too: the console is alive.
        f.write_all(b"half").unwrap();
        let s = w.poll().await.unwrap();
        assert_eq!(s.last_line.as_deref(), Some("half"));
        assert_eq!(s.unchanged_for, std::time::Duration::ZERO);
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
