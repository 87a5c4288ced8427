-- Provision tasks: one row per POST node/provision.
CREATE TABLE IF NOT EXISTS tasks (
    id          TEXT PRIMARY KEY NOT NULL,
    node        TEXT NOT NULL,
    os          TEXT NOT NULL,
    start_time  INTEGER NOT NULL,
    -- -1 while running, as the original reported it.
    end_time    INTEGER NOT NULL DEFAULT -1,
    stopped     INTEGER NOT NULL DEFAULT 0,
    -- HTTP status and JSON body of the task's result; NULL while running.
    http_status INTEGER,
    result      TEXT,
    log         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_end_time ON tasks (end_time);
