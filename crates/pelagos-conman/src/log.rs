//! Incremental tail of one conman console log.

use crate::line::meaningful_line;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How much of an existing file is read to find its current last line.
pub const DEFAULT_TAIL_WINDOW: u64 = 64 * 1024;

/// More new bytes than this (a multiple of the window) in one poll and the
/// reader jumps to the last window instead of reading them all.
const CATCH_UP_FACTOR: u64 = 16;

/// Reading the console log failed for a reason other than its absence.
#[derive(Debug, thiserror::Error)]
#[error("console log {path}: {op}: {source}")]
pub struct ConsoleLogError {
    /// The console log.
    pub path: PathBuf,
    /// What was being done: "stat", "open", "read".
    pub op: &'static str,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

/// Identity of a file, to notice that the path now names another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

#[derive(Debug)]
struct Open {
    file: File,
    id: FileId,
    /// Bytes of the file consumed so far.
    offset: u64,
}

/// The tail of `<log dir>/console.<short name>`, read incrementally.
///
/// Each [`poll`](Self::poll) reads only the bytes appended since the last one
/// (no subprocess, never the whole file again). A last line without its
/// newline is kept until the newline arrives. The file may not exist yet
/// (conmand creates it when the console connects), be truncated (reading
/// starts over at its beginning) or be rotated (the old file is read to its
/// end, then the new one from its beginning).
///
/// What the file held when the `ConsoleLog` was opened is history: its last
/// meaningful line becomes [`last_line`](Self::last_line) (found in the last
/// [`DEFAULT_TAIL_WINDOW`] bytes, whatever the file's size) but does not count
/// as activity.
#[derive(Debug)]
pub struct ConsoleLog {
    path: PathBuf,
    window: u64,
    open: Option<Open>,
    /// Bytes of the current line that have no newline yet.
    partial: Vec<u8>,
    /// The reader jumped into the middle of a line: drop bytes up to the next
    /// newline.
    skip_to_newline: bool,
    last_line: Option<String>,
    /// Meaningful text of `partial`, to notice that it grows.
    partial_text: Option<String>,
    /// Complete meaningful lines recorded since open.
    lines: u64,
    /// Changes of `partial_text` to a meaningful text since open.
    partial_changes: u64,
    bytes_read: u64,
}

impl ConsoleLog {
    /// Opens the log at `path` and reads its current last meaningful line (if
    /// the file exists). A missing file is fine; other errors are returned.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ConsoleLogError> {
        Self::with_window(path, DEFAULT_TAIL_WINDOW)
    }

    /// Like [`open`](Self::open), reading at most `window` bytes of an
    /// existing file (and of a burst larger than 16 windows) to find its last
    /// line.
    pub fn with_window(path: impl Into<PathBuf>, window: u64) -> Result<Self, ConsoleLogError> {
        let mut log = Self {
            path: path.into(),
            window: window.max(1),
            open: None,
            partial: Vec::new(),
            skip_to_newline: false,
            last_line: None,
            partial_text: None,
            lines: 0,
            partial_changes: 0,
            bytes_read: 0,
        };
        log.refresh()?;
        // History is not activity.
        log.lines = 0;
        log.partial_changes = 0;
        Ok(log)
    }

    /// The file this log reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last complete meaningful line seen, if any (see
    /// [`meaningful_line`]).
    pub fn last_line(&self) -> Option<&str> {
        self.last_line.as_deref()
    }

    /// The meaningful text of the unfinished last line, if any: a login prompt
    /// or a row of progress dots never gets its newline.
    pub fn pending_line(&self) -> Option<&str> {
        self.partial_text.as_deref()
    }

    /// Counts the console's progress since [`open`](Self::open): each new
    /// complete meaningful line, and each change of the unfinished line's
    /// meaningful text. It only grows; compare two readings to know whether
    /// the console showed anything in between.
    pub fn activity(&self) -> u64 {
        self.lines + self.partial_changes
    }

    /// Bytes read from disk since [`open`](Self::open), the first look
    /// included: the cost of following the console.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Reads what was appended since the last poll. Returns the new last
    /// meaningful line when at least one complete meaningful line arrived
    /// (even one with the same text as before: a node printing is alive),
    /// `None` otherwise, also while the file does not exist.
    pub fn poll(&mut self) -> Result<Option<String>, ConsoleLogError> {
        let before = self.lines;
        self.refresh()?;
        if self.lines != before {
            Ok(self.last_line.clone())
        } else {
            Ok(None)
        }
    }

    fn err(&self, op: &'static str, source: io::Error) -> ConsoleLogError {
        ConsoleLogError {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn refresh(&mut self) -> Result<(), ConsoleLogError> {
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.err("stat", e)),
        };
        let path_id = at_path.as_ref().map(FileId::of);

        if let Some(open) = &self.open
            && path_id != Some(open.id)
        {
            // Rotated or removed: finish the old file, it may hold the last
            // lines written before the switch.
            self.read_available()?;
            if path_id.is_none() {
                return Ok(());
            }
            tracing::debug!(path = %self.path.display(), "console log rotated; reading the new file from its start");
            self.finish_partial();
            self.open = None;
        }

        if self.open.is_none() {
            if path_id.is_none() {
                return Ok(());
            }
            let file = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.err("open", e)),
            };
            let meta = file.metadata().map_err(|e| self.err("stat", e))?;
            self.open = Some(Open {
                file,
                id: FileId::of(&meta),
                offset: 0,
            });
            self.partial.clear();
            self.partial_text = None;
            self.skip_to_newline = false;
        }
        self.read_available()
    }

    /// Reads the open file from its offset to its end.
    fn read_available(&mut self) -> Result<(), ConsoleLogError> {
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let size = match open.file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return Err(self.err("stat", e)),
        };
        if size < open.offset {
            tracing::debug!(path = %self.path.display(), size, offset = open.offset,
                "console log truncated; reading from its start");
            open.offset = 0;
            self.partial.clear();
            self.partial_text = None;
            self.skip_to_newline = false;
        }
        let open = self.open.as_mut().expect("checked above");
        let limit = if open.offset == 0 {
            self.window
        } else {
            self.window.saturating_mul(CATCH_UP_FACTOR)
        };
        if size - open.offset > limit {
            // Only the end can hold the last line: jump there and drop the
            // line the jump lands in. One byte more, so that a line starting
            // right at the window's edge is kept (its newline is skipped).
            open.offset = size - self.window - 1;
            self.partial.clear();
            self.partial_text = None;
            self.skip_to_newline = true;
        }
        if size == open.offset {
            return Ok(());
        }
        if let Err(e) = open.file.seek(SeekFrom::Start(open.offset)) {
            return Err(self.err("read", e));
        }
        // On the stack: a thousand idle watchers should not hold buffers.
        let mut buf = [0u8; 16 * 1024];
        let mut result = Ok(());
        loop {
            let open = self.open.as_mut().expect("checked above");
            // Up to the size seen above: a console writing non-stop must not
            // keep one poll reading forever.
            let want = (size.saturating_sub(open.offset)).min(buf.len() as u64) as usize;
            if want == 0 {
                break;
            }
            match open.file.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    open.offset += n as u64;
                    self.bytes_read += n as u64;
                    self.consume(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(self.err("read", e));
                    break;
                }
            }
        }
        self.update_partial_text();
        result
    }

    fn consume(&mut self, mut data: &[u8]) {
        if self.skip_to_newline {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    data = &data[i + 1..];
                    self.skip_to_newline = false;
                }
                None => return,
            }
        }
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.record(&data[..i]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..i]);
                self.record(&line);
            }
            data = &data[i + 1..];
        }
        self.partial.extend_from_slice(data);
        // A console that never sends a newline must not grow memory without
        // bound: keep the end of its line, which is what the screen shows.
        let cap = self.window as usize;
        if self.partial.len() > cap {
            self.partial.drain(..self.partial.len() - cap);
        }
    }

    fn record(&mut self, raw: &[u8]) {
        if let Some(line) = meaningful_line(&String::from_utf8_lossy(raw)) {
            self.last_line = Some(line);
            self.lines += 1;
            self.partial_text = None;
        }
    }

    /// The old file ended without a newline: what it had is a line.
    fn finish_partial(&mut self) {
        let line = std::mem::take(&mut self.partial);
        self.partial_text = None;
        self.record(&line);
    }

    fn update_partial_text(&mut self) {
        let text = if self.partial.is_empty() {
            None
        } else {
            meaningful_line(&String::from_utf8_lossy(&self.partial))
        };
        if text.is_some() && text != self.partial_text {
            self.partial_changes += 1;
        }
        self.partial_text = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{append, console_file};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    #[test]
    fn recorded_logs_give_their_last_meaningful_line() {
        let bios = ConsoleLog::open(format!("{FIXTURES}/console.bios")).unwrap();
        let line = bios.last_line().unwrap();
        assert!(line.starts_with("SATA Port A device not found."), "{line}");
        assert!(line.ends_with("SATA Port E device not found."), "{line}");

        let welcome = ConsoleLog::open(format!("{FIXTURES}/console.welcome")).unwrap();
        assert_eq!(
            welcome.last_line(),
            Some("Welcome to openSUSE Leap 15.5 - Kernel 5.14.21-150500.55-default (ttyS1).")
        );
        // Its unfinished last line is a bare timestamp: nothing pending.
        assert_eq!(welcome.pending_line(), None);

        let conmand = ConsoleLog::open(format!("{FIXTURES}/console.conmand")).unwrap();
        assert_eq!(conmand.last_line(), Some("booting"));
        // What was there at open is history.
        assert_eq!(conmand.activity(), 0);
    }

    #[test]
    fn history_is_not_news() {
        let (_dir, path) = console_file();
        append(&path, b"2026-11-24 16:40:07 old boot\r\n");
        let mut log = ConsoleLog::open(&path).unwrap();
        assert_eq!(log.last_line(), Some("old boot"));
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.activity(), 0);
        append(&path, b"2026-11-24 16:41:07 new boot\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("new boot"));
        assert_eq!(log.activity(), 1);
        assert_eq!(log.poll().unwrap(), None);
    }

    #[test]
    fn missing_file_then_created() {
        let (_dir, path) = console_file();
        let mut log = ConsoleLog::open(&path).unwrap();
        assert_eq!(log.last_line(), None);
        assert_eq!(log.poll().unwrap(), None);
        append(
            &path,
            b"<ConMan> Console [n1] log opened at 2026-11-24 16:40:07 UTC.\r\n",
        );
        assert_eq!(log.poll().unwrap(), None, "conman's notice is not output");
        append(
            &path,
            b"2026-11-24 16:40:07 boot line 0\r\n2026-11-24 16:40:08 \r\n",
        );
        assert_eq!(log.poll().unwrap().as_deref(), Some("boot line 0"));
        assert_eq!(log.activity(), 1);
    }

    #[test]
    fn repeated_text_is_still_news() {
        let (_dir, path) = console_file();
        let mut log = ConsoleLog::open(&path).unwrap();
        append(&path, b"2026-11-24 16:40:07 Press F1\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("Press F1"));
        append(&path, b"2026-11-24 16:41:07 Press F1\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("Press F1"));
        assert_eq!(log.activity(), 2);
    }

    #[test]
    fn partial_line_waits_for_its_newline() {
        let (_dir, path) = console_file();
        let mut log = ConsoleLog::open(&path).unwrap();
        append(&path, b"2026-11-24 16:40:07 boot li");
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.last_line(), None);
        assert_eq!(log.pending_line(), Some("boot li"));
        assert_eq!(log.activity(), 1, "a growing line is progress");
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.activity(), 1, "an unchanged line is not");
        append(&path, b"ne 1\r");
        assert_eq!(log.poll().unwrap(), None);
        append(&path, b"\n2026-11-24 16:40:08 ");
        assert_eq!(log.poll().unwrap().as_deref(), Some("boot line 1"));
        assert_eq!(
            log.pending_line(),
            None,
            "a bare timestamp is not pending text"
        );
        append(&path, b"host login: ");
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.pending_line(), Some("host login:"));
        assert_eq!(log.last_line(), Some("boot line 1"));
    }

    #[test]
    fn truncated_file_is_read_from_its_start() {
        let (_dir, path) = console_file();
        append(
            &path,
            b"2026-11-24 16:40:07 a long line from the last boot\r\n",
        );
        let mut log = ConsoleLog::open(&path).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        assert_eq!(log.poll().unwrap(), None);
        append(&path, b"2026-11-24 16:50:00 new\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("new"));
    }

    #[test]
    fn truncated_and_refilled_before_a_poll() {
        let (_dir, path) = console_file();
        append(
            &path,
            b"2026-11-24 16:40:07 a long line from the last boot\r\n",
        );
        let mut log = ConsoleLog::open(&path).unwrap();
        std::fs::write(&path, b"2026-11-24 16:50:00 new\r\n").unwrap();
        assert_eq!(log.poll().unwrap().as_deref(), Some("new"));
    }

    #[test]
    fn rotated_file_finishes_the_old_then_reads_the_new() {
        let (dir, path) = console_file();
        append(&path, b"2026-11-24 16:40:07 one\r\n");
        let mut log = ConsoleLog::open(&path).unwrap();
        let old = dir.path().join("console.n1.1");
        std::fs::rename(&path, &old).unwrap();
        // Written by conmand between logrotate's rename and its SIGHUP.
        append(&old, b"2026-11-24 16:40:08 two\r\n2026-11-24 16:40:09 thr");
        // Renamed away, nothing new in its place yet: the old file is still
        // followed.
        assert_eq!(log.poll().unwrap().as_deref(), Some("two"));
        assert_eq!(log.pending_line(), Some("thr"));
        // The new file, much shorter than the old offset.
        append(&path, b"ee\r\n2026-11-24 16:40:10 four\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("four"));
        // two, "thr" pending, "thr" completed at rotation, "ee", four.
        assert_eq!(log.activity(), 5);
        append(&path, b"2026-11-24 16:40:11 five\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("five"));
    }

    #[test]
    fn removed_and_recreated() {
        let (_dir, path) = console_file();
        append(&path, b"2026-11-24 16:40:07 one\r\n");
        let mut log = ConsoleLog::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.last_line(), Some("one"));
        append(&path, b"2026-11-24 16:41:07 two\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("two"));
    }

    #[test]
    fn large_file_is_read_from_near_its_end() {
        let (_dir, path) = console_file();
        let mut data = Vec::new();
        for i in 0..200_000 {
            data.extend_from_slice(format!("2026-11-24 16:40:07 line {i}\r\n").as_bytes());
        }
        data.extend_from_slice(b"2026-11-24 16:40:07 \r\n");
        std::fs::write(&path, &data).unwrap();
        assert!(data.len() > 5_000_000);
        let mut log = ConsoleLog::open(&path).unwrap();
        assert_eq!(log.last_line(), Some("line 199999"));
        assert!(
            log.bytes_read() <= DEFAULT_TAIL_WINDOW + 1,
            "{}",
            log.bytes_read()
        );

        // A burst far larger than the window: only its end is read.
        let before = log.bytes_read();
        append(&path, &data);
        append(&path, b"2026-11-24 16:40:08 after the burst\r\n");
        assert_eq!(log.poll().unwrap().as_deref(), Some("after the burst"));
        assert!(log.bytes_read() - before <= DEFAULT_TAIL_WINDOW + 1);

        // A modest append is read in full, once.
        let before = log.bytes_read();
        let chunk = &data[..100_000];
        append(&path, chunk);
        assert!(log.poll().unwrap().is_some());
        assert_eq!(log.bytes_read() - before, chunk.len() as u64);
        assert_eq!(log.poll().unwrap(), None);
        assert_eq!(log.bytes_read() - before, chunk.len() as u64);
    }

    #[test]
    fn window_landing_mid_line_drops_that_line() {
        let (_dir, path) = console_file();
        std::fs::write(&path, format!("{}\r\nlast\r\n", "x".repeat(100))).unwrap();
        assert_eq!(
            ConsoleLog::with_window(&path, 16).unwrap().last_line(),
            Some("last")
        );
        std::fs::write(&path, format!("first\r\n{}\r\n", "y".repeat(100))).unwrap();
        // The window holds only the tail of a line: not trusted as a line.
        assert_eq!(
            ConsoleLog::with_window(&path, 16).unwrap().last_line(),
            None
        );
        // A line that starts right at the window's edge is whole.
        std::fs::write(&path, format!("{}\nexactly 16 bytes", "z".repeat(100))).unwrap();
        let log = ConsoleLog::with_window(&path, 16).unwrap();
        assert_eq!(log.pending_line(), Some("exactly 16 bytes"));
    }

    #[test]
    fn endless_line_keeps_only_its_end() {
        let (_dir, path) = console_file();
        let mut log = ConsoleLog::with_window(&path, 1024).unwrap();
        for i in 0..100 {
            append(&path, format!("{:>100}", i).as_bytes());
            log.poll().unwrap();
        }
        let pending = log.pending_line().unwrap();
        assert!(pending.len() <= 1024, "{}", pending.len());
        assert!(pending.ends_with(" 99"), "{pending}");
        append(&path, b"\r\n");
        assert!(log.poll().unwrap().unwrap().ends_with(" 99"));
    }

    #[test]
    fn unreadable_log_is_an_error_naming_it() {
        let (_dir, path) = console_file();
        std::fs::create_dir(&path).unwrap();
        let err = ConsoleLog::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("console.n1"), "{msg}");
        assert!(msg.contains("read"), "{msg}");
    }
}
