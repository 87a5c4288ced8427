//! Stall detection over a [`ConsoleLog`], on tokio time.

use crate::log::{ConsoleLog, ConsoleLogError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// The console showed nothing new for `max_age`: the boot is stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    /// The last meaningful line (or unfinished line) it showed, if any.
    pub last_line: Option<String>,
    /// Time since the console last showed something (or since the watch
    /// started or was reset).
    pub age: Duration,
    /// The log could not be read at the last poll (not "missing": that is
    /// normal before conmand connects).
    pub error: Option<String>,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "console showed nothing new for {:.1} s",
            self.age.as_secs_f64()
        )?;
        match &self.last_line {
            Some(l) => write!(f, "; last line: {l:?}")?,
            None => write!(f, "; no meaningful line")?,
        }
        if let Some(e) = &self.error {
            write!(f, "; {e}")?;
        }
        Ok(())
    }
}

/// A point in a console's output, from [`ConsoleWatch::mark`]: what the
/// console shows later is "since" the mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleMark {
    activity: u64,
    at: Instant,
}

impl ConsoleMark {
    /// When the mark was taken.
    pub fn at(&self) -> Instant {
        self.at
    }
}

/// Follows a console log for progress. The caller polls it
/// ([`poll_now`](Self::poll_now)) at its own pace (the provisioning state
/// machine interleaves polls with SSH probes) and asks, as of the last poll:
///
/// - [`stalled`](Self::stalled): nothing new for `max_age` (the lab's
///   `conman_line_max_age`), counted from the last output, the start or the
///   last [`reset`](Self::reset) (after a cold restart);
/// - [`shown_since`](Self::shown_since) a [`mark`](Self::mark) taken just
///   before a power action: the new boot.
///
/// Time is [`tokio::time`]'s, so tests can run it under
/// `tokio::time::pause()`.
#[derive(Debug)]
pub struct ConsoleWatch {
    log: ConsoleLog,
    max_age: Duration,
    /// Start of the current quiet period: last activity, start or reset.
    quiet_since: Instant,
    last_activity: Option<Instant>,
    seen: u64,
    error: Option<String>,
}

impl ConsoleWatch {
    /// Watches `log`; the stall clock starts now.
    pub fn new(log: ConsoleLog, max_age: Duration) -> Self {
        let seen = log.activity();
        Self {
            log,
            max_age,
            quiet_since: Instant::now(),
            last_activity: None,
            seen,
            error: None,
        }
    }

    /// Opens the log at `path` (see [`ConsoleLog::open`]) and watches it.
    pub fn open(path: impl Into<PathBuf>, max_age: Duration) -> Result<Self, ConsoleLogError> {
        Ok(Self::new(ConsoleLog::open(path)?, max_age))
    }

    /// The log being watched.
    pub fn log(&self) -> &ConsoleLog {
        &self.log
    }

    /// Silence this long is a stall.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The last complete meaningful line seen.
    pub fn last_line(&self) -> Option<&str> {
        self.log.last_line()
    }

    /// The newest text the console shows: its unfinished line if that is
    /// meaningful, else its last complete meaningful line.
    pub fn newest_text(&self) -> Option<&str> {
        self.log.pending_line().or(self.log.last_line())
    }

    /// Restarts the stall clock, e.g. after a cold restart.
    pub fn reset(&mut self) {
        self.quiet_since = Instant::now();
    }

    /// When a poll last saw the console show something new.
    pub fn last_activity(&self) -> Option<Instant> {
        self.last_activity
    }

    /// Reads the log now and marks the current end of its output: anything
    /// the console shows after this counts as [`shown_since`](Self::shown_since)
    /// the mark, anything before does not.
    pub fn mark(&mut self) -> ConsoleMark {
        self.poll_now();
        ConsoleMark {
            activity: self.seen,
            at: Instant::now(),
        }
    }

    /// Whether a poll after `mark` saw the console show something new.
    pub fn shown_since(&self, mark: ConsoleMark) -> bool {
        self.seen != mark.activity
    }

    /// How long the console has shown nothing new (as of the last poll's
    /// findings), counted from the last activity, start or reset.
    pub fn quiet_for(&self) -> Duration {
        Instant::now().saturating_duration_since(self.quiet_since)
    }

    /// A stall when the console has shown nothing new for `max_age` (as of
    /// the last poll's findings; poll first). While the console stays silent
    /// it stays stalled: call [`reset`](Self::reset) after acting on a stall
    /// (a cold restart).
    pub fn stalled(&self) -> Option<Stalled> {
        let age = self.quiet_for();
        (age >= self.max_age).then(|| Stalled {
            last_line: self.newest_text().map(str::to_owned),
            age,
            error: self.error.clone(),
        })
    }

    /// The last read error, if the last poll failed.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Reads the log now. Returns the newest text when the console showed
    /// something new. Read errors are kept (see [`error`](Self::error)) and
    /// logged once each, not returned: a log that cannot be read looks like
    /// a silent console and ends in a stall that names the error.
    pub fn poll_now(&mut self) -> Option<String> {
        let now = Instant::now();
        match self.log.poll() {
            Ok(_) => self.error = None,
            Err(e) => {
                let msg = e.to_string();
                if self.error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(error = %msg, "cannot read console log");
                }
                self.error = Some(msg);
            }
        }
        let activity = self.log.activity();
        if activity != self.seen {
            self.seen = activity;
            self.last_activity = Some(now);
            self.quiet_since = now;
            let text = self.newest_text().map(str::to_owned);
            tracing::trace!(line = text.as_deref().unwrap_or(""), "console output");
            text
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! The watch polled the way the provisioning state machine polls it: at
    //! its own pace (every second here, or between SSH probes), asking
    //! `stalled` and `shown_since` after each poll.
    use super::*;
    use crate::test_support::{append, console_file};
    use std::path::Path;
    use tokio::time::sleep;

    const MAX_AGE: Duration = Duration::from_secs(180);
    const EVERY: Duration = Duration::from_secs(1);

    /// A task appending each chunk to `path`, `every` after the previous.
    fn spawn_appends(
        path: &Path,
        every: Duration,
        chunks: Vec<Vec<u8>>,
    ) -> tokio::task::JoinHandle<()> {
        let path = path.to_owned();
        tokio::spawn(async move {
            for chunk in chunks {
                sleep(every).await;
                append(&path, &chunk);
            }
        })
    }

    /// Poll every `every` until the watch reports a stall.
    async fn until_stalled(watch: &mut ConsoleWatch, every: Duration) -> Stalled {
        loop {
            watch.poll_now();
            if let Some(stalled) = watch.stalled() {
                return stalled;
            }
            sleep(every).await;
        }
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[tokio::test(start_paused = true)]
    async fn silent_console_stalls_after_max_age() {
        let (_dir, path) = console_file();
        append(&path, b"2026-11-24 16:40:07 old boot\r\n");
        let start = Instant::now();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        let mark = watch.mark();
        assert_eq!(watch.stalled(), None);
        sleep(MAX_AGE - Duration::from_millis(1)).await;
        watch.poll_now();
        assert_eq!(watch.stalled(), None, "stalled before max_age");
        sleep(Duration::from_millis(1)).await;
        let stalled = until_stalled(&mut watch, EVERY).await;
        assert_eq!(start.elapsed(), MAX_AGE);
        assert_eq!(stalled.age, MAX_AGE);
        assert_eq!(stalled.last_line.as_deref(), Some("old boot"));
        assert_eq!(stalled.error, None);
        assert!(!watch.shown_since(mark));
        assert_eq!(watch.last_activity(), None);
        assert!(stalled.to_string().contains("\"old boot\""), "{stalled}");
    }

    #[tokio::test(start_paused = true)]
    async fn output_pushes_the_stall_back() {
        let (_dir, path) = console_file();
        let start = Instant::now();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        let lines = (0..5).map(|i| format!("2026-11-24 16:40:07 line {i}\r\n").into_bytes());
        let lines = lines.collect();
        let writer = spawn_appends(&path, Duration::from_secs(100), lines);
        let stalled = until_stalled(&mut watch, EVERY).await;
        writer.await.unwrap();
        // Last line at 500 s, seen by the poll at 500 or 501 s.
        let at = secs(start.elapsed());
        assert!((680.0..=681.0).contains(&at), "stalled at {at}");
        assert_eq!(stalled.last_line.as_deref(), Some("line 4"));
        let last = secs(watch.last_activity().unwrap() - start);
        assert!(
            (500.0..=501.0).contains(&last),
            "last output seen at {last}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_dots_are_not_a_stall() {
        let (_dir, path) = console_file();
        let start = Instant::now();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        append(&path, b"2026-11-24 16:40:07 Loading kernel");
        let dots = vec![b".".to_vec(); 4];
        let writer = spawn_appends(&path, Duration::from_secs(120), dots);
        let stalled = until_stalled(&mut watch, EVERY).await;
        writer.await.unwrap();
        let at = secs(start.elapsed());
        assert!((660.0..=661.0).contains(&at), "stalled at {at}");
        assert_eq!(stalled.last_line.as_deref(), Some("Loading kernel...."));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_restarts_the_clock() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        until_stalled(&mut watch, EVERY).await;
        // A stall is not forgotten by polling again.
        watch.poll_now();
        assert!(watch.stalled().is_some());
        // Cold restart: power off, 30 s, power on.
        sleep(Duration::from_secs(30)).await;
        watch.reset();
        assert_eq!(watch.stalled(), None);
        let restarted = Instant::now();
        let stalled = until_stalled(&mut watch, EVERY).await;
        assert_eq!(restarted.elapsed(), MAX_AGE);
        assert_eq!(stalled.age, MAX_AGE);
        assert_eq!(stalled.last_line, None);
        assert!(
            stalled.to_string().contains("no meaningful line"),
            "{stalled}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn new_boot_after_a_power_cycle_is_seen() {
        let (_dir, path) = console_file();
        append(&path, b"2026-11-24 16:40:07 login: \r\n");
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        append(&path, b"2026-11-24 16:40:08 reboot: Power down\r\n");
        // The engine marks the console, then cycles the power: what the old
        // boot wrote is before the mark.
        let cycled = watch.mark();
        assert!(!watch.shown_since(cycled));
        let seabios = b"2026-11-24 16:41:00 SeaBIOS (version 1.16.2)\r\n".to_vec();
        let writer = spawn_appends(&path, Duration::from_secs(12), vec![seabios]);
        let line = loop {
            let line = watch.poll_now();
            if watch.shown_since(cycled) {
                break line;
            }
            sleep(EVERY).await;
        };
        writer.await.unwrap();
        assert_eq!(line.as_deref(), Some("SeaBIOS (version 1.16.2)"));
        let at = secs(cycled.at().elapsed());
        assert!((12.0..=13.0).contains(&at), "seen at {at}");
        // Already shown: stays shown, whatever later polls find.
        watch.poll_now();
        assert!(watch.shown_since(cycled));
        assert_eq!(watch.newest_text(), Some("SeaBIOS (version 1.16.2)"));
    }

    #[tokio::test(start_paused = true)]
    async fn output_then_stall() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, Duration::from_secs(10)).unwrap();
        let every = Duration::from_millis(250);
        let one = b"2026-11-24 16:40:07 one\r\n".to_vec();
        let writer = spawn_appends(&path, Duration::from_secs(3), vec![one]);
        let line = loop {
            if let Some(line) = watch.poll_now() {
                break line;
            }
            assert_eq!(watch.stalled(), None);
            sleep(every).await;
        };
        assert_eq!(line, "one");
        writer.await.unwrap();
        let seen = Instant::now();
        let stalled = until_stalled(&mut watch, every).await;
        assert_eq!(stalled.last_line.as_deref(), Some("one"));
        assert_eq!(seen.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn polls_between_probes_keep_the_clock() {
        // The state machine polls after each SSH probe, however long those
        // take: polling itself never moves the stall clock.
        let (_dir, path) = console_file();
        let start = Instant::now();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        let probe = Duration::from_millis(700);
        let mut probes = 0;
        let stalled = loop {
            watch.poll_now();
            if let Some(s) = watch.stalled() {
                break s;
            }
            sleep(probe).await;
            probes += 1;
        };
        // The first poll at or after 180 s: 258 × 0.7 s.
        assert_eq!(start.elapsed(), probe * 258);
        assert_eq!(stalled.age, start.elapsed());
        assert!(stalled.age >= MAX_AGE && stalled.age < MAX_AGE + probe);
        assert!(probes >= 250, "{probes}");
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_log_stalls_with_the_error() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        std::fs::create_dir(&path).unwrap();
        let stalled = until_stalled(&mut watch, EVERY).await;
        let err = stalled.error.expect("the read error");
        assert!(err.contains("console.n1"), "{err}");
        assert!(watch.error().is_some());
    }

    #[test]
    fn watch_can_move_between_threads() {
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let mut watch = ConsoleWatch::open(dir.path().join("console.n1"), MAX_AGE).unwrap();
        is_send(&watch);
        is_send(&watch.mark());
    }
}
