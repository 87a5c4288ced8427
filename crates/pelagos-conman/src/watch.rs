//! Stall detection over a [`ConsoleLog`], on tokio time.

use crate::log::{ConsoleLog, ConsoleLogError};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::{Instant, sleep_until};

/// How often [`ConsoleWatch`] reads the log unless told otherwise.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The original's `conman_line_max_age`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(180);

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
            "console showed nothing new for {:.0} s",
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

/// What [`ConsoleWatch::wait_event`] saw first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// The console showed something new; the newest text it shows.
    Output(Option<String>),
    /// Nothing new for `max_age`.
    Stalled(Stalled),
}

/// Watches a console log for progress: polls it every `interval` and reports
/// a stall when nothing new appeared for `max_age`.
///
/// All waiting uses [`tokio::time`], so tests can run it under
/// `tokio::time::pause()`. The `wait_*` methods are cancel-safe (their state
/// lives in the watch), so they can sit in a `tokio::select!` that is
/// re-entered in a loop.
///
/// To ask "has the console shown the new boot", take a [`mark`](Self::mark)
/// just before the power action and ask [`shown_since`](Self::shown_since)
/// or await [`wait_output_since`](Self::wait_output_since) with it.
#[derive(Debug)]
pub struct ConsoleWatch {
    log: ConsoleLog,
    interval: Duration,
    max_age: Duration,
    /// Start of the current quiet period: last activity, start or reset.
    quiet_since: Instant,
    last_activity: Option<Instant>,
    last_poll: Option<Instant>,
    seen: u64,
    error: Option<String>,
}

impl ConsoleWatch {
    /// Watches `log`; the stall clock starts now.
    pub fn new(log: ConsoleLog, max_age: Duration) -> Self {
        let seen = log.activity();
        Self {
            log,
            interval: DEFAULT_POLL_INTERVAL,
            max_age,
            quiet_since: Instant::now(),
            last_activity: None,
            last_poll: None,
            seen,
            error: None,
        }
    }

    /// Opens the log at `path` (see [`ConsoleLog::open`]) and watches it.
    pub fn open(path: impl Into<PathBuf>, max_age: Duration) -> Result<Self, ConsoleLogError> {
        Ok(Self::new(ConsoleLog::open(path)?, max_age))
    }

    /// Watches `node`'s console as the lab config places it:
    /// `<conman_log_dir>/console.<short name>`, stalled after
    /// `conman_line_max_age`.
    pub fn for_node(
        lab: &pelagos_config::LabConfig,
        node: &pelagos_config::Node,
    ) -> Result<Self, ConsoleLogError> {
        let max_age =
            Duration::try_from_secs_f64(lab.timing.conman_line_max_age).unwrap_or(DEFAULT_MAX_AGE);
        Self::open(
            crate::log_path(&lab.conman_log_dir, node.short_name()),
            max_age,
        )
    }

    /// Polls every `interval` (at least 1 ms) instead of every second.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The log being watched.
    pub fn log(&self) -> &ConsoleLog {
        &self.log
    }

    /// Silence longer than this is a stall.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Time between two reads of the log.
    pub fn interval(&self) -> Duration {
        self.interval
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
        self.last_poll = Some(now);
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

    /// Resolves when the console has shown nothing new for `max_age`. While
    /// the console stays silent it resolves again at once: call
    /// [`reset`](Self::reset) after acting on a stall (a cold restart).
    pub async fn wait_stall(&mut self) -> Stalled {
        loop {
            match self.step(None).await {
                Some(ConsoleEvent::Stalled(s)) => return s,
                _ => continue,
            }
        }
    }

    /// Resolves once the console has shown something new since `mark` (at
    /// once if it already has); returns the newest text. Never reports a
    /// stall: put it in a `select!` with a timeout or [`wait_stall`](Self::wait_stall)'s
    /// caller's own deadline.
    pub async fn wait_output_since(&mut self, mark: ConsoleMark) -> Option<String> {
        loop {
            if !self.shown_since(mark) {
                self.poll_if_due(false);
            }
            if self.shown_since(mark) {
                return self.newest_text().map(str::to_owned);
            }
            sleep_until(self.next_poll()).await;
        }
    }

    /// Resolves at the console's next output or at a stall, whichever comes
    /// first. Useful to copy console progress into a task log while watching
    /// for a stall.
    pub async fn wait_event(&mut self) -> ConsoleEvent {
        let start = self.seen;
        loop {
            if let Some(ev) = self.step(Some(start)).await {
                return ev;
            }
        }
    }

    /// One poll (if due) and at most one sleep. `Some` when a stall is
    /// reached or, with `output_after`, when activity passed that count.
    async fn step(&mut self, output_after: Option<u64>) -> Option<ConsoleEvent> {
        self.poll_if_due(true);
        if let Some(n) = output_after
            && self.seen != n
        {
            return Some(ConsoleEvent::Output(self.newest_text().map(str::to_owned)));
        }
        let now = Instant::now();
        let deadline = self.quiet_since + self.max_age;
        if now >= deadline {
            return Some(ConsoleEvent::Stalled(Stalled {
                last_line: self.newest_text().map(str::to_owned),
                age: now - self.quiet_since,
                error: self.error.clone(),
            }));
        }
        sleep_until(self.next_poll().min(deadline)).await;
        None
    }

    fn next_poll(&self) -> Instant {
        match self.last_poll {
            Some(t) => t + self.interval,
            None => Instant::now(),
        }
    }

    /// Polls when an interval has passed since the last poll, or when the
    /// stall deadline is reached (so a stall is only reported after a fresh
    /// look).
    fn poll_if_due(&mut self, at_deadline: bool) {
        let now = Instant::now();
        let due = now >= self.next_poll()
            || (at_deadline
                && now >= self.quiet_since + self.max_age
                && self.last_poll != Some(now));
        if due {
            self.poll_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{append, console_file};
    use std::path::Path;
    use tokio::time::sleep;

    const MAX_AGE: Duration = Duration::from_secs(180);

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
        let stalled = watch.wait_stall().await;
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
        let stalled = watch.wait_stall().await;
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
        let stalled = watch.wait_stall().await;
        writer.await.unwrap();
        let at = secs(start.elapsed());
        assert!((660.0..=661.0).contains(&at), "stalled at {at}");
        assert_eq!(stalled.last_line.as_deref(), Some("Loading kernel...."));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_restarts_the_clock() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        watch.wait_stall().await;
        // Cold restart: power off, 30 s, power on.
        sleep(Duration::from_secs(30)).await;
        watch.reset();
        let restarted = Instant::now();
        let stalled = watch.wait_stall().await;
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
        let line = watch.wait_output_since(cycled).await;
        writer.await.unwrap();
        assert_eq!(line.as_deref(), Some("SeaBIOS (version 1.16.2)"));
        let at = secs(cycled.at().elapsed());
        assert!((12.0..=13.0).contains(&at), "seen at {at}");
        assert!(watch.shown_since(cycled));
        // Already shown: resolves at once.
        let again = Instant::now();
        watch.wait_output_since(cycled).await;
        assert_eq!(again.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_event_reports_output_then_stall() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, Duration::from_secs(10))
            .unwrap()
            .with_interval(Duration::from_millis(250));
        let one = b"2026-11-24 16:40:07 one\r\n".to_vec();
        let writer = spawn_appends(&path, Duration::from_secs(3), vec![one]);
        assert_eq!(
            watch.wait_event().await,
            ConsoleEvent::Output(Some("one".into()))
        );
        writer.await.unwrap();
        let seen = Instant::now();
        match watch.wait_event().await {
            ConsoleEvent::Stalled(s) => {
                assert_eq!(s.last_line.as_deref(), Some("one"));
                assert_eq!(seen.elapsed(), Duration::from_secs(10));
            }
            other => panic!("expected a stall, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn select_loop_keeps_its_clock() {
        // The engine re-enters wait_stall in a select! with its SSH probe.
        let (_dir, path) = console_file();
        let start = Instant::now();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        let mut probes = 0;
        let stalled = loop {
            tokio::select! {
                s = watch.wait_stall() => break s,
                _ = sleep(Duration::from_millis(700)) => probes += 1,
            }
        };
        assert_eq!(start.elapsed(), MAX_AGE);
        assert_eq!(stalled.age, MAX_AGE);
        assert!(probes >= 250, "{probes}");
    }

    #[tokio::test(start_paused = true)]
    async fn unreadable_log_stalls_with_the_error() {
        let (_dir, path) = console_file();
        let mut watch = ConsoleWatch::open(&path, MAX_AGE).unwrap();
        std::fs::create_dir(&path).unwrap();
        let stalled = watch.wait_stall().await;
        let err = stalled.error.expect("the read error");
        assert!(err.contains("console.n1"), "{err}");
        assert!(watch.error().is_some());
    }

    #[test]
    fn watch_and_its_futures_can_move_between_threads() {
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let mut watch = ConsoleWatch::open(dir.path().join("console.n1"), MAX_AGE).unwrap();
        is_send(&watch);
        let mark = watch.mark();
        is_send(&watch.wait_stall());
        is_send(&watch.wait_output_since(mark));
        is_send(&watch.wait_event());
    }

    #[test]
    fn for_node_uses_the_lab_settings() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            r#"{{"conman_log_dir": {:?}, "conman_line_max_age": 42,
                "nodes": [{{"node": "n7.lab.example.com", "mac": "aa:bb:cc:dd:ee:ff", "ip": "10.0.0.7"}}]}}"#,
            dir.path()
        );
        let lab = pelagos_config::LabConfig::parse(&cfg).unwrap();
        std::fs::write(
            dir.path().join("console.n7"),
            "2026-11-24 16:40:07 hello\r\n",
        )
        .unwrap();
        let watch = ConsoleWatch::for_node(&lab, &lab.nodes[0]).unwrap();
        assert_eq!(watch.max_age(), Duration::from_secs(42));
        assert_eq!(watch.last_line(), Some("hello"));
        assert_eq!(watch.log().path(), dir.path().join("console.n7"));
    }
}
