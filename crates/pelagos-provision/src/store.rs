//! Where task state outlives the process: the [`TaskStore`] trait and its
//! embedded SQLite implementation (sqlx, migrations compiled in). The trait
//! speaks plain rows so a PostgreSQL implementation can follow when several
//! servers share a lab.

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlSafeStr, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A task's outcome: the HTTP status and JSON body `/tasks/status/<id>` answers.
/// The body is kept as compact JSON text: served as is, and a tenth of the
/// memory of a parsed value.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResult {
    /// The HTTP status: 200 done, 410 dismissed, else the failure's
    /// ([`crate::ProvisionError::http_status`]; 500 for a panic or a task
    /// interrupted by a server restart).
    pub code: u16,
    /// The JSON body as compact text: on success `{"status": "done",
    /// "node": <the node's lab config entry>, "os": <resolved OS>}`,
    /// otherwise `{"error": <message>}`.
    pub body: bytes::Bytes,
}

impl TaskResult {
    /// A result of status `code` whose body is `body` serialised compactly.
    pub fn new(code: u16, body: &serde_json::Value) -> Self {
        Self {
            code,
            body: bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
        }
    }

    /// The body parsed.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One task as stored (its log apart: logs are read on demand).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    /// The task id: 32 lowercase hex digits (a UUID v4 without hyphens) as
    /// the engine makes them; the store's primary key.
    pub id: String,
    /// The name of the provisioned node.
    pub node: String,
    /// The OS as requested.
    pub os: String,
    /// Unix seconds.
    pub start_time: i64,
    /// How the task ended; `None` while it runs.
    pub end: Option<TaskEnd>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEnd {
    /// Unix seconds.
    pub time: i64,
    /// Dismissed (by request, or by a newer provision of the node).
    pub stopped: bool,
    /// The status and body `/tasks/status/<id>` answers.
    pub result: TaskResult,
}

/// The end time a running task shows (`EndTime: -1`, `"end_time": -1`),
/// as the original reported it, and what the `end_time` column holds
/// while it runs.
pub const RUNNING_END_TIME: i64 = -1;

impl TaskRow {
    /// A task that starts running at `start_time`.
    pub fn running(id: String, node: String, os: String, start_time: i64) -> Self {
        Self {
            id,
            node,
            os,
            start_time,
            end: None,
        }
    }

    /// The outcome; `None` while running.
    pub fn result(&self) -> Option<&TaskResult> {
        self.end.as_ref().map(|e| &e.result)
    }

    /// Unix seconds the task ended; [`RUNNING_END_TIME`] (-1) while it runs.
    pub fn end_time(&self) -> i64 {
        self.end.as_ref().map_or(RUNNING_END_TIME, |e| e.time)
    }

    /// Whether it was dismissed; `false` while it runs.
    pub fn stopped(&self) -> bool {
        self.end.as_ref().is_some_and(|e| e.stopped)
    }
}

/// Why the task store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database, its 0700 directory or its 0600 file could not be
    /// created or opened.
    #[error("cannot open task store {path}: {source}")]
    Open {
        /// The database file; `:memory:` for [`SqliteStore::in_memory`].
        path: PathBuf,
        /// The I/O or SQLite error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migration failed (the database may come from another
    /// version of Pelagos).
    #[error("cannot migrate task store {path}: {source}")]
    Migrate {
        /// The database file; `:memory:` for [`SqliteStore::in_memory`].
        path: PathBuf,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("task store: {what} failed: {source}")]
    Query {
        /// The operation, in words: `insert task`, `finish task`, `load
        /// tasks`, `read task log`, `expire tasks`.
        what: &'static str,
        /// The SQLite error.
        #[source]
        source: sqlx::Error,
    },
    /// A stored finished task's result cannot be read back: its code is no
    /// HTTP status (`u16`) or its body is not JSON.
    #[error("task store: task [{id}] has a corrupt result: {message}")]
    Corrupt {
        /// The task's id.
        id: String,
        /// The conversion or JSON error.
        message: String,
    },
}

/// Durable task state.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Record a task that starts running.
    async fn insert(&self, task: &TaskRow) -> Result<(), StoreError>;
    /// Record a task's end (its row carries end time, stopped flag and
    /// result) together with its log.
    async fn finish(&self, task: &TaskRow, log: &str) -> Result<(), StoreError>;
    /// Every task, oldest first, without logs.
    async fn load(&self) -> Result<Vec<TaskRow>, StoreError>;
    /// A task's log; `None` for an unknown task.
    async fn log(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Delete finished tasks that ended before `end_before` (unix seconds);
    /// their ids.
    async fn expire(&self, end_before: i64) -> Result<Vec<String>, StoreError>;
}

/// Tasks in an SQLite file (WAL, one connection: writes are serialised
/// anyway and reads are served from memory).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "tasks".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0001_tasks.sql").into_sql_str(),
        false,
    )])
}

/// Mode of the server's state dir: task logs and results are the lab's
/// business only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the task database and its `-wal` and `-shm` files.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Create `dir` (and missing parents) with mode 0700 whatever the umask.
/// An existing `dir` open to group or others is tightened to 0700, with a
/// warning saying so.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let existed = dir.is_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != PRIVATE_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
        if existed && mode & 0o077 != 0 {
            tracing::warn!(dir = %dir.display(), was = format!("{mode:04o}"),
                "state dir was open to group or others; tightened to 0700");
        }
    }
    Ok(())
}

/// Make the database at `path` exist with mode 0600 before SQLite opens it
/// (SQLite gives its `-wal` and `-shm` files the database's mode), and
/// tighten existing ones (the database, `-wal`, `-shm`) to 0600.
fn create_private_db(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        let was = match std::fs::metadata(file) {
            Ok(md) => md.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if was != PRIVATE_FILE_MODE {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))?;
            tracing::info!(file = %file.display(), was = format!("{was:04o}"),
                "task store file set to 0600");
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating it, and its directory 0700, if needed) and migrate.
    /// The database and its `-wal` and `-shm` files are 0600.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            create_private_dir(dir).map_err(|e| StoreError::Open {
                path: path.to_owned(),
                source: sqlx::Error::Io(e),
            })?;
        }
        create_private_db(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            source: sqlx::Error::Io(e),
        })?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30));
        Self::connect(opts, path).await
    }

    /// A private in-memory store (tests, throwaway servers).
    pub async fn in_memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::new().in_memory(true);
        Self::connect(opts, Path::new(":memory:")).await
    }

    async fn connect(opts: SqliteConnectOptions, path: &Path) -> Result<Self, StoreError> {
        // sqlx asks `tracing::enabled!` after every statement it would log;
        // with per-layer filters (the server's console and task-log layers)
        // that call leaves stale filter state, and the next event can be
        // dropped from a layer (tokio-rs/tracing#2519): a task log could
        // lose a line after each store write. No statement logging, no call.
        let opts = sqlx::ConnectOptions::disable_statement_logging(opts);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source,
            })?;
        migrator()
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self { pool })
    }
}

fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

type RowTuple = (
    String,
    String,
    String,
    i64,
    i64,
    bool,
    Option<i64>,
    Option<String>,
);

/// Binds the columns every task row has, in table order: id, node, os,
/// start_time, end_time, stopped.
fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>,
    t: &'q TaskRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments> {
    q.bind(&t.id)
        .bind(&t.node)
        .bind(&t.os)
        .bind(t.start_time)
        .bind(t.end_time())
        .bind(t.stopped())
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn insert(&self, t: &TaskRow) -> Result<(), StoreError> {
        bind_row(
            sqlx::query(
                "INSERT INTO tasks (id, node, os, start_time, end_time, stopped) VALUES (?, ?, ?, ?, ?, ?)",
            ),
            t,
        )
        .execute(&self.pool)
        .await
        .map_err(q("insert task"))?;
        Ok(())
    }

    async fn finish(&self, t: &TaskRow, log: &str) -> Result<(), StoreError> {
        let (code, body) = match t.result() {
            Some(r) => (
                Some(i64::from(r.code)),
                Some(String::from_utf8_lossy(&r.body).into_owned()),
            ),
            None => (None, None),
        };
        bind_row(
            sqlx::query(
                "INSERT INTO tasks (id, node, os, start_time, end_time, stopped, http_status, result, log)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET end_time = excluded.end_time,
                   stopped = excluded.stopped, http_status = excluded.http_status,
                   result = excluded.result, log = excluded.log",
            ),
            t,
        )
        .bind(code)
        .bind(body)
        .bind(log)
        .execute(&self.pool)
        .await
        .map_err(q("finish task"))?;
        Ok(())
    }

    async fn load(&self) -> Result<Vec<TaskRow>, StoreError> {
        let rows: Vec<RowTuple> = sqlx::query_as(
            "SELECT id, node, os, start_time, end_time, stopped, http_status, result
             FROM tasks ORDER BY start_time, rowid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("load tasks"))?;
        rows.into_iter()
            .map(
                |(id, node, os, start_time, end_time, stopped, code, body)| {
                    // A row without a result is running, whatever its
                    // `end_time` column holds (-1 as written).
                    let end = match (code, body) {
                        (Some(code), Some(body)) => Some(TaskEnd {
                            time: end_time,
                            stopped,
                            result: TaskResult {
                                code: u16::try_from(code).map_err(|e| StoreError::Corrupt {
                                    id: id.clone(),
                                    message: e.to_string(),
                                })?,
                                body: {
                                    serde_json::from_str::<serde::de::IgnoredAny>(&body).map_err(
                                        |e| StoreError::Corrupt {
                                            id: id.clone(),
                                            message: e.to_string(),
                                        },
                                    )?;
                                    bytes::Bytes::from(body)
                                },
                            },
                        }),
                        _ => None,
                    };
                    Ok(TaskRow {
                        id,
                        node,
                        os,
                        start_time,
                        end,
                    })
                },
            )
            .collect()
    }

    async fn log(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT log FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read task log"))?;
        Ok(row.map(|r| r.0))
    }

    async fn expire(&self, end_before: i64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("DELETE FROM tasks WHERE end_time >= 0 AND end_time < ? RETURNING id")
                .bind(end_before)
                .fetch_all(&self.pool)
                .await
                .map_err(q("expire tasks"))?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// One behaviour suite for every [`TaskStore`] implementation (SQLite now,
/// PostgreSQL later): run it on an empty store; the first deviation is the
/// error.
pub mod conformance {
    use super::{TaskEnd, TaskResult, TaskRow, TaskStore};

    /// A running task of node `n1` (also the unit tests' row).
    pub(crate) fn row(id: &str, start: i64) -> TaskRow {
        TaskRow::running(id.into(), "n1".into(), "sle".into(), start)
    }

    /// A task of node `n1` dismissed at `end` (410, stopped).
    pub(crate) fn dismissed_row(id: &str, start: i64, end: i64) -> TaskRow {
        TaskRow {
            end: Some(TaskEnd {
                time: end,
                stopped: true,
                result: TaskResult::new(
                    410,
                    &serde_json::json!({"error": "Stop provisioning thread by request"}),
                ),
            }),
            ..row(id, start)
        }
    }

    fn check(ok: bool, what: &str) -> Result<(), String> {
        if ok { Ok(()) } else { Err(what.to_owned()) }
    }

    /// Run the suite on `s`, which must start empty (it is left holding the
    /// suite's tasks); `Err` describes the first check that failed, or the
    /// store error that stopped the suite.
    pub async fn run(s: &dyn TaskStore) -> Result<(), String> {
        let e = |e: super::StoreError| e.to_string();
        check(
            s.load().await.map_err(e)?.is_empty(),
            "store not empty at start",
        )?;
        s.insert(&row("a", 10)).await.map_err(e)?;
        s.insert(&row("b", 20)).await.map_err(e)?;
        check(
            s.insert(&row("a", 10)).await.is_err(),
            "duplicate id accepted",
        )?;
        let a = dismissed_row("a", 10, 15);
        s.finish(&a, "line 1\nline 2 \u{e9}\n").await.map_err(e)?;
        // finish without insert (a task recovered from another store)
        let mut c = row("c", 30);
        c.end = Some(TaskEnd {
            time: 40,
            stopped: false,
            result: TaskResult::new(200, &serde_json::json!({"status": "done"})),
        });
        s.finish(&c, "").await.map_err(e)?;
        let rows = s.load().await.map_err(e)?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        check(ids == ["a", "b", "c"], &format!("load order {ids:?}"))?;
        check(
            rows[0] == a,
            &format!("finished row read back as {:?}", rows[0]),
        )?;
        check(
            rows[1] == row("b", 20),
            &format!("running row read back as {:?}", rows[1]),
        )?;
        check(
            s.log("a").await.map_err(e)?.as_deref() == Some("line 1\nline 2 \u{e9}\n"),
            "log not read back",
        )?;
        check(
            s.log("zz").await.map_err(e)?.is_none(),
            "log of unknown task",
        )?;
        let gone = s.expire(16).await.map_err(e)?;
        check(gone == ["a"], &format!("expire(16) removed {gone:?}"))?;
        let gone = s.expire(i64::MAX).await.map_err(e)?;
        check(
            gone == ["c"],
            &format!("expire(max) removed {gone:?} (running tasks never expire)"),
        )?;
        check(
            s.log("a").await.map_err(e)?.is_none(),
            "expired log still there",
        )?;
        check(
            s.load().await.map_err(e)?.len() == 1,
            "rows left after expiry",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::conformance::{dismissed_row, row};
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_conformance_suite() {
        let s = SqliteStore::in_memory().await.unwrap();
        conformance::run(&s).await.unwrap();
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("t.db")).await.unwrap();
        conformance::run(&s).await.unwrap();
    }

    #[tokio::test]
    async fn round_trip_survives_reopen_and_expires() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state/pelagos.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.insert(&row("a", 10)).await.unwrap();
            s.insert(&row("b", 20)).await.unwrap();
            let a = dismissed_row("a", 10, 15);
            s.finish(&a, "line 1\nline 2\n").await.unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        let rows = s.load().await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, "a");
        assert_eq!(rows[0].result().unwrap().code, 410);
        assert!(rows[0].stopped());
        assert_eq!(rows[0].end_time(), 15);
        assert_eq!(rows[1].result(), None);
        assert_eq!(rows[1].end_time(), RUNNING_END_TIME);
        assert_eq!(s.log("a").await.unwrap().unwrap(), "line 1\nline 2\n");
        assert_eq!(s.log("zz").await.unwrap(), None);
        assert_eq!(s.expire(16).await.unwrap(), vec!["a".to_owned()]);
        assert_eq!(
            s.expire(1000).await.unwrap(),
            Vec::<String>::new(),
            "running tasks never expire"
        );
        assert_eq!(s.load().await.unwrap().len(), 1);
    }

    /// Rows as an earlier server wrote them (`end_time` -1 and no result
    /// while running) load, and rows written now hold the same columns.
    #[tokio::test]
    async fn rows_of_an_earlier_server_load_and_columns_stay_the_same() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pelagos.db");
        let s = SqliteStore::open(&path).await.unwrap();
        sqlx::query(
            "INSERT INTO tasks (id, node, os, start_time, end_time, stopped, http_status, result, log)
             VALUES ('run', 'n1', 'sle', 10, -1, 0, NULL, NULL, ''),
                    ('done', 'n1', 'sle', 20, 25, 1, 410, '{\"error\":\"x\"}', 'log')",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        let rows = s.load().await.unwrap();
        assert_eq!(rows[0], row("run", 10));
        assert_eq!(rows[0].end_time(), -1);
        assert!(!rows[0].stopped());
        let end = rows[1].end.as_ref().unwrap();
        assert_eq!((end.time, end.stopped, end.result.code), (25, true, 410));
        assert_eq!(&end.result.body[..], br#"{"error":"x"}"#);
        // What this server writes: -1 and NULLs while running.
        s.insert(&row("new", 30)).await.unwrap();
        s.finish(&dismissed_row("fin", 40, 45), "").await.unwrap();
        type Columns = (String, i64, bool, Option<i64>, Option<String>);
        let cols: Vec<Columns> = sqlx::query_as(
            "SELECT id, end_time, stopped, http_status, result FROM tasks
             WHERE id IN ('new', 'fin') ORDER BY id",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        assert_eq!(
            cols,
            [
                (
                    "fin".to_owned(),
                    45,
                    true,
                    Some(410),
                    Some(r#"{"error":"Stop provisioning thread by request"}"#.to_owned())
                ),
                ("new".to_owned(), -1, false, None, None),
            ]
        );
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o7777
    }

    #[tokio::test]
    async fn state_dir_is_private_and_the_database_files_0600() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join("pelagos.db");
        let s = SqliteStore::open(&path).await.unwrap();
        // A write, so the -wal and -shm files exist while the store is open.
        s.insert(&row("a", 10)).await.unwrap();
        for f in ["pelagos.db", "pelagos.db-wal", "pelagos.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        // open creates a missing dir private too.
        let nested = d.path().join("new/state/pelagos.db");
        let s2 = SqliteStore::open(&nested).await.unwrap();
        s2.insert(&row("b", 10)).await.unwrap();
        assert_eq!(mode(nested.parent().unwrap()), 0o700);
        assert_eq!(mode(&nested), 0o600);
    }

    #[tokio::test]
    async fn wider_state_dir_and_database_files_are_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("pelagos.db");
        for f in ["pelagos.db", "pelagos.db-wal", "pelagos.db-shm"] {
            std::fs::write(dir.join(f), b"").unwrap();
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let s = SqliteStore::open(&path).await.unwrap();
        s.insert(&row("a", 10)).await.unwrap();
        for f in ["pelagos.db", "pelagos.db-wal", "pelagos.db-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        assert_eq!(s.load().await.unwrap().len(), 1);
    }
}
