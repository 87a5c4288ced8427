//! Tracing output captured into a buffer, for assertions on what was logged.

use std::sync::{Arc, Mutex, OnceLock};
use tracing::subscriber::DefaultGuard;

/// The captured text: formatted events, no ANSI colours.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish()
    }

    /// Every event (DEBUG and above) of the whole test binary. Global
    /// rather than per-thread: a thread-local subscriber misses events
    /// whose callsite another test thread registered first.
    pub fn global() -> &'static LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture::default();
            tracing::subscriber::set_global_default(capture.subscriber(tracing::Level::DEBUG))
                .expect("one global subscriber");
            capture
        })
    }

    /// Every event (DEBUG and above) of this thread while the guard lives.
    pub fn thread() -> (LogCapture, DefaultGuard) {
        let capture = LogCapture::default();
        let guard = tracing::subscriber::set_default(capture.subscriber(tracing::Level::DEBUG));
        (capture, guard)
    }

    /// What `f` returns and the WARN (and above) events it logged.
    pub fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
        let capture = LogCapture::default();
        let out = tracing::subscriber::with_default(capture.subscriber(tracing::Level::WARN), f);
        (out, capture.text())
    }

    /// The text captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
