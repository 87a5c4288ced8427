//! make-cfgs as a user runs it: files written, `--check`, `--only`,
//! `--sql-upsert`, and an invalid config that writes nothing.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn demo_lab() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/lab.json")
}

/// `make-cfgs -c <config> -d <out>`.
fn make_cfgs(config: &Path, out: &Path) -> Command {
    let mut cmd = Command::cargo_bin("make-cfgs").unwrap();
    cmd.arg("-c").arg(config).arg("-d").arg(out);
    cmd
}

const FILES: [&str; 5] = [
    "states/etc/dnsmasq/dnsmasq.d/network_nodes.conf",
    "states/etc/conman.conf",
    "deploy.roster",
    "sql/nodes.sql",
    "udev/70-persistent-net.rules",
];

/// Every file under `dir`, relative, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn writes_every_file_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let assert = make_cfgs(&demo_lab(), dir.path()).assert().success();
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for f in FILES {
        let path = dir.path().join(f);
        assert!(path.is_file(), "{f} not written");
        assert!(
            stdout.contains(&format!("wrote {}", path.display())),
            "{stdout}"
        );
    }
    let mut expected: Vec<String> = FILES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(files_in(dir.path()), expected, "no temp files left behind");
    let dns = std::fs::read_to_string(dir.path().join(FILES[0])).unwrap();
    assert!(
        dns.starts_with("dhcp-host=52:54:00:20:00:11,storage-01,10.20.0.11\n"),
        "{dns}"
    );
    // The password is in conman.conf (0600) but never on the terminal.
    assert!(!stdout.contains("demo-bmc-password"));
}

#[test]
fn check_exits_0_when_current_and_1_with_a_diff_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let run_check = || make_cfgs(&demo_lab(), dir.path()).arg("--check").assert();
    // Nothing on disk yet: every file differs, nothing is written.
    let out = run_check().code(1).get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("--- /dev/null\n+++ b/deploy.roster\n"),
        "{out}"
    );
    assert!(files_in(dir.path()).is_empty(), "--check wrote files");

    make_cfgs(&demo_lab(), dir.path()).assert().success();
    run_check()
        .code(0)
        .stdout(predicate::str::contains("up to date"));

    // A conman.conf others can read is reported even when its text is right.
    use std::os::unix::fs::PermissionsExt;
    let conman = dir.path().join("states/etc/conman.conf");
    std::fs::set_permissions(&conman, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_check().code(1).stdout(predicate::str::contains(
        "states/etc/conman.conf: mode 644, expected 600",
    ));
    make_cfgs(&demo_lab(), dir.path()).assert().success();
    let mode = std::fs::metadata(&conman).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a re-run makes it private again");
    run_check().code(0);

    // Edit one file by hand: --check shows exactly that change.
    let roster = dir.path().join("deploy.roster");
    let text = std::fs::read_to_string(&roster).unwrap();
    std::fs::write(&roster, text.replace("10.20.0.21", "10.20.0.99")).unwrap();
    // A stale conman.conf diff must not print the BMC password.
    let text = std::fs::read_to_string(&conman).unwrap();
    std::fs::write(&conman, text.replace("client-01", "client-1")).unwrap();
    let out = run_check().code(1).get_output().stdout.clone();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("--- a/deploy.roster\n+++ b/deploy.roster\n"),
        "{out}"
    );
    assert!(
        out.contains("\n-  host: \"10.20.0.99\"\n+  host: \"10.20.0.21\"\n"),
        "{out}"
    );
    assert!(
        out.contains("+CONSOLE name=\"client-01\" IPMIOPTS=\"U:ADMIN,P:********\""),
        "{out}"
    );
    assert!(!out.contains("demo-bmc-password"), "{out}");
    assert!(
        !out.contains("dnsmasq"),
        "unchanged files are not listed: {out}"
    );
    // And --check left the edited file alone.
    assert!(
        std::fs::read_to_string(&roster)
            .unwrap()
            .contains("10.20.0.99")
    );
}

#[test]
fn only_writes_the_named_kinds() {
    let dir = tempfile::tempdir().unwrap();
    make_cfgs(&demo_lab(), dir.path())
        .args(["--only", "sql,udev"])
        .assert()
        .success();
    assert_eq!(
        files_in(dir.path()),
        ["sql/nodes.sql", "udev/70-persistent-net.rules"]
    );
}

#[test]
fn unknown_only_kind_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    make_cfgs(&demo_lab(), dir.path())
        .args(["--only", "dnsmasq,dhcp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("\"dhcp\""));
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn sql_upsert_flag() {
    let dir = tempfile::tempdir().unwrap();
    make_cfgs(&demo_lab(), dir.path())
        .args(["--only", "sql", "--sql-upsert"])
        .assert()
        .success();
    let sql = std::fs::read_to_string(dir.path().join("sql/nodes.sql")).unwrap();
    assert_eq!(
        sql.matches("ON CONFLICT (name) DO UPDATE").count(),
        4,
        "{sql}"
    );
}

#[test]
fn invalid_config_writes_nothing_and_names_the_file_and_problems() {
    let dir = tempfile::tempdir().unwrap();
    let lab = dir.path().join("lab.json");
    let text = std::fs::read_to_string(demo_lab()).unwrap();
    std::fs::write(&lab, text.replace("52:54:00:20:00:12", "52:54:00:20:00:11")).unwrap();
    let out = dir.path().join("out");
    make_cfgs(&lab, &out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(lab.display().to_string()))
        .stderr(predicate::str::contains(
            "node [storage-02.lab.example.com] field `mac` = \"52:54:00:20:00:11\": duplicate: already used by node [storage-01.lab.example.com]",
        ));
    assert!(!out.exists(), "an invalid lab wrote files");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let sample =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/original-sample.hjson");
    make_cfgs(&sample, dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("original-sample.hjson"))
        .stderr(predicate::str::contains("43:1"));
    assert!(files_in(dir.path()).is_empty());
}

/// `--lint` reads the lab only and lists every problem, lab-wide and of
/// single nodes (which the server disables and make-cfgs refuses); exit 1
/// when there is any, 0 when none.
#[test]
fn lint_lists_every_problem_with_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lab.json");
    std::fs::write(
        &cfg,
        r#"{"nodes": [{"node": "a", "mac": "aa.bb.cc.dd:68:73"},
                      {"node": "a", "mac": "aa:bb:cc:dd:ee:02"}]}"#,
    )
    .unwrap();
    let lint = || {
        let mut cmd = Command::cargo_bin("make-cfgs").unwrap();
        cmd.arg("-c").arg(&cfg).arg("--lint");
        cmd
    };
    lint()
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "disables its node: node [a] field `mac` = \"aa.bb.cc.dd:68:73\": not a MAC address",
        ))
        .stdout(predicate::str::contains(
            "lab-wide: node [a] field `node` = \"a\": duplicate",
        ))
        .stderr(predicate::str::contains("2 problem(s)"));
    // Strict as ever: the same lab writes nothing.
    let out = dir.path().join("out");
    make_cfgs(&cfg, &out).assert().code(2);
    assert!(!out.exists());
    std::fs::write(
        &cfg,
        r#"{"nodes": [{"node": "a", "mac": "aa:bb:cc:dd:ee:01"}]}"#,
    )
    .unwrap();
    lint()
        .assert()
        .success()
        .stdout(predicate::str::contains("no problems"));
    // --lint and --check do not mix.
    lint().arg("--check").assert().code(2);
}
