//! Per-task logs: a tracing [`Layer`] that finds the `task_id` field in an
//! event's span scope and appends the event to that task's log.
//!
//! Install [`TaskLogs::layer`] in the process's subscriber and hand the same
//! [`TaskLogs`] to the engine: every event inside a provision's span (it
//! carries `task_id`) lands in that task's log, served by `/tasks/log/<id>`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A log longer than this is cut: a looping driver must not eat the memory
/// of 10,000 concurrent tasks.
pub const MAX_TASK_LOG: usize = 64 * 1024;

/// The logs of running tasks, by task id.
#[derive(Default)]
pub struct TaskLogs {
    logs: Mutex<HashMap<String, String>>,
}

impl TaskLogs {
    /// No logs yet; shared (`Arc`) by the engine and the layer
    /// ([`TaskLogs::layer`]) that feeds it.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The layer feeding these logs.
    pub fn layer(self: &Arc<Self>) -> TaskLogLayer {
        TaskLogLayer { logs: self.clone() }
    }

    /// Start collecting for a task; events for unknown ids are dropped.
    pub fn open(&self, task_id: &str) {
        self.lock().insert(task_id.to_owned(), String::new());
    }

    /// Stop collecting and hand over the text.
    pub fn close(&self, task_id: &str) -> Option<String> {
        self.lock().remove(task_id)
    }

    /// The text so far of a running task.
    pub fn get(&self, task_id: &str) -> Option<String> {
        self.lock().get(task_id).cloned()
    }

    /// Append a line directly (for lines written outside the task's span).
    pub fn append(&self, task_id: &str, line: &str) {
        if let Some(log) = self.lock().get_mut(task_id) {
            push_capped(log, line);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn push_capped(log: &mut String, line: &str) {
    const CUT: &str = "... log truncated\n";
    if log.len() >= MAX_TASK_LOG {
        return;
    }
    if log.len() + line.len() + 1 > MAX_TASK_LOG - CUT.len() {
        log.push_str(CUT);
        // Pad so later lines are refused by the first check.
        while log.len() < MAX_TASK_LOG {
            log.push(' ');
        }
        return;
    }
    log.push_str(line);
    log.push('\n');
}

/// See the module docs.
pub struct TaskLogLayer {
    logs: Arc<TaskLogs>,
}

/// Stored in a span's extensions when the span has a `task_id` field.
struct TaskIdExt(String);

impl<S> Layer<S> for TaskLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut v = TaskIdVisitor(None);
        attrs.record(&mut v);
        if let (Some(task_id), Some(span)) = (v.0, ctx.span(id)) {
            span.extensions_mut().insert(TaskIdExt(task_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(task_id) = scope
            .from_root()
            .find_map(|s| s.extensions().get::<TaskIdExt>().map(|t| t.0.clone()))
        else {
            return;
        };
        let mut line = String::with_capacity(96);
        let now = time::OffsetDateTime::now_utc();
        let _ = write!(
            line,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} | {} | ",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond(),
            event.metadata().level()
        );
        let mut v = LineVisitor {
            line: &mut line,
            first: true,
        };
        event.record(&mut v);
        self.logs.append(&task_id, &line);
    }
}

struct TaskIdVisitor(Option<String>);

impl Visit for TaskIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "task_id" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "task_id" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

struct LineVisitor<'a> {
    line: &'a mut String,
    first: bool,
}

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.line.push_str(value);
        } else {
            self.sep();
            let _ = write!(self.line, "{}={value}", field.name());
        }
        self.first = false;
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.line, "{value:?}");
        } else {
            self.sep();
            let _ = write!(self.line, "{}={value:?}", field.name());
        }
        self.first = false;
    }
}

impl LineVisitor<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.line.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_in_a_task_span_go_to_its_log_only() {
        let logs = TaskLogs::new();
        let sub = tracing_subscriber::registry().with(logs.layer());
        logs.open("t1");
        logs.open("t2");
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("provision", task_id = "t1", node = "n1");
            let _g = span.enter();
            let inner = tracing::info_span!("step");
            let _i = inner.enter();
            tracing::info!(state = "core", "Executing salt state");
            drop(_i);
            drop(_g);
            tracing::info!("outside any task");
        });
        let t1 = logs.close("t1").unwrap();
        assert!(
            t1.contains("| INFO | Executing salt state state=core"),
            "{t1}"
        );
        assert_eq!(t1.lines().count(), 1);
        assert_eq!(logs.close("t2").unwrap(), "");
    }

    #[test]
    fn log_is_capped() {
        let logs = TaskLogs::new();
        logs.open("t");
        let line = "x".repeat(1000);
        for _ in 0..200 {
            logs.append("t", &line);
        }
        let text = logs.get("t").unwrap();
        assert!(text.len() <= MAX_TASK_LOG);
        assert!(text.contains("log truncated"));
    }
}
