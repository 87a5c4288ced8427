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
/// Activity is stamped with the time of the poll that saw it, so it can be
/// up to one interval late: to ask "did the console show anything after this
/// power cycle", call [`poll_now`](Self::poll_now) just before the power
/// action and take `Instant::now()` after it.
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

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

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

    /// Whether a poll at or after `since` saw the console show something new.
    pub fn shown_since(&self, since: Instant) -> bool {
        self.last_activity.is_some_and(|t| t >= since)
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

    /// Resolves when the console has shown nothing new for `max_age`.
    pub async fn wait_stall(&mut self) -> Stalled {
        loop {
            match self.step(None).await {
                Some(ConsoleEvent::Stalled(s)) => return s,
                _ => continue,
            }
        }
    }

    /// Resolves once a poll at or after `since` saw the console show
    /// something new (at once if one already did); returns the newest text.
    /// Never reports a stall.
    pub async fn wait_output_since(&mut self, since: Instant) -> Option<String> {
        loop {
            if self.shown_since(since) {
                return self.newest_text().map(str::to_owned);
            }
            self.poll_if_due(false);
            if self.shown_since(since) {
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
