//! The teuthology SQL loaded into a real, throwaway PostgreSQL with paddles'
//! `nodes` table.

use crate::common::demo_lab;
use pelagos_config::LabConfig;
use pelagos_config::generate::{self, Kind, Options};
use pelagos_testkit::require_program;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA: &str = "CREATE TABLE nodes (
    id serial PRIMARY KEY,
    name varchar(256) UNIQUE NOT NULL,
    machine_type varchar(32),
    arch varchar(16),
    mac_address varchar(17),
    is_vm bool NOT NULL,
    locked bool NOT NULL,
    description text
);";

/// A PostgreSQL cluster in a temp dir, listening only on a unix socket there;
/// stopped (immediately) and removed on drop, on failure too.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    fn start() -> Cluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).max())
            .filter(|b| b.join("initdb").exists())
            .unwrap_or_else(|| {
                panic!(
                    "PostgreSQL server is missing: run scripts/install-test-deps.sh (as root) first"
                )
            });
        require_program("/usr/bin/psql");
        // postgres refuses to run as root: as root, run it as user postgres.
        let as_postgres = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster {
            dir,
            bin,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .arg("postgres")
                .arg(c.dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown postgres failed");
        }
        let data = c.dir.path().join("data");
        c.pg(
            "initdb",
            &["-D", path(&data), "-A", "trust", "-U", "postgres"],
        );
        let opts = format!(
            "-k {} -p 5432 -c listen_addresses=''",
            c.dir.path().display()
        );
        let log = c.dir.path().join("log");
        c.pg(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-o",
                &opts,
                "start",
            ],
        );
        c
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let prog = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(prog);
            c
        } else {
            Command::new(prog)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// psql with ON_ERROR_STOP; Err(stderr) when the script fails.
    fn psql(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-U",
                "postgres",
                "-p",
                "5432",
                "-h",
            ])
            .arg(self.dir.path())
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn load(&self, file: &Path) -> Result<String, String> {
        self.psql(&["-f", path(file)])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args(["-D", path(&data), "-m", "immediate", "stop"])
            .output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_sql(lab: &LabConfig, upsert: bool, dir: &Path) -> PathBuf {
    let opts = Options {
        sql_upsert: upsert,
        ..Options::only([Kind::Sql])
    };
    let outputs = generate::render_all(lab, &opts, dir).unwrap();
    generate::write_all(&outputs, dir).unwrap().remove(0)
}

#[test]
fn sql_loads_into_paddles_schema_and_upsert_loads_twice() {
    let pg = Cluster::start();
    pg.psql(&["-c", SCHEMA]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut lab = demo_lab();
    // A quote and a backslash in a comment must not break the script.
    lab.nodes[0].comment = r#"it's "fast"; DROP TABLE nodes; -- \n\'"#.into();
    let plain = write_sql(&lab, false, work.path());
    pg.load(&plain).unwrap();
    let rows = pg
        .psql(&["-c", "SELECT name, machine_type, mac_address, is_vm, locked, arch, description FROM nodes ORDER BY id"])
        .unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    assert_eq!(rows.len(), 4, "t_exclude node left out: {rows:?}");
    assert_eq!(
        rows[0],
        r#"storage-01.lab.example.com|storage|52:54:00:20:00:11|f|f|x86-64|it's "fast"; DROP TABLE nodes; -- \n\'"#
    );
    assert_eq!(
        rows[3],
        "client-02.lab.example.com|client|52:54:00:20:00:22|f|f|x86-64|Bob's old box, reboots after provisioning"
    );
    // Plain INSERTs cannot be loaded again (the transaction leaves nothing half done)...
    let err = pg.load(&plain).unwrap_err();
    assert!(err.contains("duplicate key"), "{err}");
    // ...the upsert can, and updates but keeps paddles' lock state.
    pg.psql(&[
        "-c",
        "UPDATE nodes SET locked = true WHERE name = 'client-01.lab.example.com'",
    ])
    .unwrap();
    lab.nodes[2].t_machine_type = "big-client".into();
    let upsert = write_sql(&lab, true, work.path());
    pg.load(&upsert).unwrap();
    pg.load(&upsert).unwrap();
    let row = pg
        .psql(&["-c", "SELECT machine_type, locked, (SELECT count(*) FROM nodes) FROM nodes WHERE name = 'client-01.lab.example.com'"])
        .unwrap();
    assert_eq!(row.trim(), "big-client|t|4");
}
