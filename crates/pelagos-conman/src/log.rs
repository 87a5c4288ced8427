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
    pub path: PathBuf,
    /// What was being done: "stat", "open", "read".
    pub op: &'static str,
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
    buf: Vec<u8>,
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
            buf: vec![0; 64 * 1024],
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
            self.window * CATCH_UP_FACTOR
        };
        if size - open.offset > limit {
            // Only the end can hold the last line: jump there and drop the
            // line the jump lands in.
            open.offset = size - self.window;
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
        let mut buf = std::mem::take(&mut self.buf);
        let mut result = Ok(());
        loop {
            let open = self.open.as_mut().expect("checked above");
            match open.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    open.offset += n as u64;
                    self.consume(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(self.err("read", e));
                    break;
                }
            }
        }
        self.buf = buf;
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
