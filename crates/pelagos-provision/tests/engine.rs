//! The engine and state machine against the fast simulated lab: every outcome
//! class, dismissal, per-node exclusivity, logs, and restart recovery.

use pelagos_config::LabConfig;
use pelagos_provision::sim::{SimLab, SimMode};
use pelagos_provision::{
    BootRecords, Drivers, Engine, ProvisionRequest, SqliteStore, TaskEnd, TaskLogs, TaskRow,
    TaskStore,
};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const LAB: &str = r#"{
  "sls_list": "core, ceph",
  "nodes": [
    {"node": "ok1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "bmc_ip": "10.1.0.1"},
    {"node": "ok2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2", "provision_need_reboot": "yes"},
    {"node": "bmc.lab", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.0.0.3", "bmc_ip": "10.1.0.3", "sim": {"bmc_error": true}},
    {"node": "stall.lab", "mac": "aa:bb:cc:dd:ee:04", "ip": "10.0.0.4", "sim": {"console_stall": true}},
    {"node": "hang.lab", "mac": "aa:bb:cc:dd:ee:05", "ip": "10.0.0.5", "sim": {"never_ready": true}},
    {"node": "salt.lab", "mac": "aa:bb:cc:dd:ee:06", "ip": "10.0.0.6", "sim": {"salt_error": true}},
    {"node": "slow.lab", "mac": "aa:bb:cc:dd:ee:07", "ip": "10.0.0.7", "sim": {"boot_time": 30}},
    {"node": "nomac.lab", "ip": "10.0.0.8"}
  ]
}"#;

fn logs() -> Arc<TaskLogs> {
    static LOGS: OnceLock<Arc<TaskLogs>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = TaskLogs::new();
        let sub = tracing_subscriber::registry().with(logs.layer());
        tracing::subscriber::set_global_default(sub).expect("one subscriber per test binary");
        logs
    })
    .clone()
}

struct Lab {
    engine: Arc<Engine>,
    records: Arc<BootRecords>,
    lab: Arc<LabConfig>,
}

impl Lab {
    /// Wait until the node's boot record names `os` (a running task is past
    /// writing it); the node, for later checks.
    async fn wait_record(&self, name: &str, os: &str) -> pelagos_config::Node {
        let node = self.lab.node(name).unwrap().clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.records.configured_os(&node) != os {
            assert!(
                tokio::time::Instant::now() < deadline,
                "record of {name} never named {os}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        node
    }
}

async fn start(dir: &Path) -> Lab {
    start_with(dir, |_| {}).await
}

async fn start_with(dir: &Path, tune: impl FnOnce(&mut pelagos_config::Timing)) -> Lab {
    start_full(dir, tune, |_| {}).await
}

/// Like [`start_with`], with a chance to swap drivers of the simulated lab.
async fn start_full(
    dir: &Path,
    tune: impl FnOnce(&mut pelagos_config::Timing),
    swap: impl FnOnce(&mut Drivers),
) -> Lab {
    let lab = Arc::new(LabConfig::parse(LAB).unwrap());
    let tftp = dir.join("tftp");
    std::fs::create_dir_all(tftp.join("sle-15.6-1.0")).unwrap();
    let _ = std::os::unix::fs::symlink(tftp.join("sle-15.6-1.0"), tftp.join("sle"));
    let mut timing = SimMode::Fast.timing(&lab.timing);
    tune(&mut timing);
    engine_on(dir, lab, &tftp, timing, swap).await
}

/// The engine on `lab` and the TFTP root `tftp`, with the simulated lab's
/// drivers (`swap` may replace some) and a store in `dir`.
async fn engine_on(
    dir: &Path,
    lab: Arc<LabConfig>,
    tftp: &Path,
    timing: pelagos_config::Timing,
    swap: impl FnOnce(&mut Drivers),
) -> Lab {
    let records = Arc::new(BootRecords::new(tftp, &lab));
    let mut drivers =
        SimLab::new(SimMode::Fast, timing.clone(), dir.join("console")).drivers(records.clone());
    swap(&mut drivers);
    let store = Arc::new(SqliteStore::open(&dir.join("pelagos.db")).await.unwrap());
    let engine = Engine::start(lab.clone(), timing, drivers, store, logs())
        .await
        .unwrap();
    Lab {
        engine,
        records,
        lab,
    }
}

fn req(node: &str, os: &str) -> ProvisionRequest {
    ProvisionRequest {
        node: node.into(),
        os: os.into(),
        ..Default::default()
    }
}

async fn finished(engine: &Engine, id: &str) -> TaskRow {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t = engine.status(id).expect("task known");
        if t.result().is_some() {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} still running: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn error_of(t: &TaskRow) -> String {
    t.result().unwrap().json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_runs_every_step_and_logs_it() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let id = l
        .engine
        .provision(ProvisionRequest {
            node: "ok1.lab".into(),
            os: "sle".into(),
            extra_sls: "extra1 extra2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(id.len(), 32);
    let t = finished(&l.engine, &id).await;
    let r = t.result().unwrap();
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.json()["status"], "done");
    assert_eq!(r.json()["os"], "sle-15.6-1.0");
    assert_eq!(r.json()["node"]["node"], "ok1.lab");
    assert_eq!(r.json()["node"]["mac"], "aa:bb:cc:dd:ee:01");
    assert!(!t.stopped());
    assert!(t.end_time() >= t.start_time);
    assert_eq!(t.os, "sle");
    let node = &l.lab.nodes[0];
    assert_eq!(l.records.configured_os(node), "local");
    assert_eq!(l.engine.pxe_of(node).os, "local");
    let log = l.engine.log(&id).await.unwrap();
    for want in [
        "Boot record of node [ok1.lab] set to [sle-15.6-1.0]",
        "power on",
        "Connected to node [ok1.lab]",
        "Applying salt state [core]",
        "Applying salt state [ceph]",
        "Applying salt state [extra2]",
        "Boot record of node [ok1.lab] set to [local]",
    ] {
        assert!(log.contains(want), "log lacks {want:?}:\n{log}");
    }
    let console = std::fs::read_to_string(d.path().join("console/console.ok1")).unwrap();
    assert!(
        console.contains("<ConMan> Console [ok1] log opened"),
        "{console}"
    );
    assert!(console.contains("login:"));

    // Second provision of a powered node cycles instead of powering on;
    // `local` skips salt; need_reboot node cycles twice.
    let id = l.engine.provision(req("ok1.lab", "local")).await.unwrap();
    assert_eq!(finished(&l.engine, &id).await.result().unwrap().code, 200);
    let log = l.engine.log(&id).await.unwrap();
    assert!(log.contains("power cycle"), "{log}");
    assert!(!log.contains("salt"), "{log}");

    let id = l
        .engine
        .provision(req("ok2.lab", "maintenance_image"))
        .await
        .unwrap();
    assert_eq!(finished(&l.engine, &id).await.result().unwrap().code, 200);
    let log = l.engine.log(&id).await.unwrap();
    assert_eq!(log.matches("Connected to node").count(), 2, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_map_to_their_codes() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let ids: Vec<_> =
        futures_ids(&l.engine, &["bmc.lab", "stall.lab", "hang.lab", "salt.lab"]).await;
    let bmc = finished(&l.engine, &ids[0]).await;
    assert_eq!(bmc.result().unwrap().code, 502);
    assert!(
        error_of(&bmc).starts_with("BMCException"),
        "{}",
        error_of(&bmc)
    );
    assert!(error_of(&bmc).contains("10.1.0.3"));

    let stall = finished(&l.engine, &ids[1]).await;
    assert_eq!(stall.result().unwrap().code, 502);
    assert_eq!(
        error_of(&stall),
        "Caught CannotBootException max cold restart counter (3) reached for stall.lab"
    );
    let log = l.engine.log(&ids[1]).await.unwrap();
    assert_eq!(log.matches("; cold restart ").count(), 3, "{log}");

    let hang = finished(&l.engine, &ids[2]).await;
    assert_eq!(hang.result().unwrap().code, 504);
    assert_eq!(
        error_of(&hang),
        "Caught TimeoutException 10.0.0.5 have not started in timeout 6"
    );

    let salt = finished(&l.engine, &ids[3]).await;
    assert_eq!(salt.result().unwrap().code, 500);
    assert!(
        error_of(&salt).starts_with("Salt execution failed: state [core]"),
        "{}",
        error_of(&salt)
    );

    let rows = l
        .engine
        .with_tasks(|rows| rows.iter().map(|&r| r.clone()).collect::<Vec<_>>());
    assert_eq!(rows.len(), 4);
    let row = rows.iter().find(|r| r.id == ids[2]).unwrap();
    assert_eq!(error_of(row), error_of(&hang));

    // No failed node is left to reinstall on its next reboot.
    for (name, id) in ["bmc.lab", "stall.lab", "hang.lab", "salt.lab"]
        .into_iter()
        .zip(&ids)
    {
        assert_left_local(&l, name, id).await;
        let n = l.lab.node(name).unwrap();
        assert_eq!(l.engine.pxe_of(n).os, "local", "{name}");
    }
}

/// The node's boot record is `local`, and the task's log says it was set so
/// after the failure.
async fn assert_left_local(l: &Lab, node: &str, id: &str) {
    let n = l.lab.node(node).unwrap();
    assert_eq!(l.records.configured_os(n), "local", "{node}");
    let log = l.engine.log(id).await.unwrap();
    let local = format!("Boot record of node [{node}] set to [local]");
    let at = log
        .rfind(&local)
        .unwrap_or_else(|| panic!("{node}: log lacks {local:?}:\n{log}"));
    let error = error_of(&l.engine.status(id).unwrap());
    let failed = log
        .find(&error)
        .unwrap_or_else(|| panic!("{node}: log lacks the error {error:?}:\n{log}"));
    assert!(
        failed < at,
        "{node}: reset logged before the failure:\n{log}"
    );
}

/// A console that cannot be followed: the provision fails with a plain
/// error (500) after the install record was written.
struct BrokenConsole;

#[async_trait::async_trait]
impl pelagos_provision::drivers::ConsoleDriver for BrokenConsole {
    async fn watch(
        &self,
        node: &pelagos_config::Node,
    ) -> Result<pelagos_provision::drivers::ConsoleLog, pelagos_provision::DriverError> {
        Err(pelagos_provision::DriverError::new(
            "console",
            node,
            "no conman log",
        ))
    }
}

/// Readiness that panics: the task ends "Oops!" (500).
struct PanickingReadiness;

#[async_trait::async_trait]
impl pelagos_provision::drivers::Readiness for PanickingReadiness {
    async fn is_ready(
        &self,
        _node: &pelagos_config::Node,
    ) -> Result<bool, pelagos_provision::DriverError> {
        panic!("probe exploded")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_failure_leaves_the_record_local() {
    let d = tempfile::tempdir().unwrap();
    let l = start_full(d.path(), |_| {}, |dr| dr.console = Arc::new(BrokenConsole)).await;
    let id = l.engine.provision(req("ok1.lab", "sle")).await.unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 500, "{t:?}");
    assert!(error_of(&t).contains("cannot watch console"), "{t:?}");
    let log = l.engine.log(&id).await.unwrap();
    assert!(
        log.contains("Boot record of node [ok1.lab] set to [sle-15.6-1.0]"),
        "the install record was written first:\n{log}"
    );
    assert_left_local(&l, "ok1.lab", &id).await;

    let d = tempfile::tempdir().unwrap();
    let l = start_full(
        d.path(),
        |_| {},
        |dr| dr.readiness = Arc::new(PanickingReadiness),
    )
    .await;
    let id = l.engine.provision(req("ok1.lab", "sle")).await.unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 500, "{t:?}");
    assert!(error_of(&t).contains("probe exploded"), "{t:?}");
    let n = l.lab.node("ok1.lab").unwrap();
    assert_eq!(l.records.configured_os(n), "local");
    let log = l.engine.log(&id).await.unwrap();
    assert!(
        log.contains("Boot record of node [ok1.lab] set to [local]"),
        "{log}"
    );
}

async fn futures_ids(engine: &Arc<Engine>, nodes: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for n in nodes {
        ids.push(engine.provision(req(n, "sle")).await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_and_os_are_refused_before_a_task_exists() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let e = l.engine.provision(req("nope", "sle")).await.unwrap_err();
    assert_eq!(
        (e.http_status(), e.to_string()),
        (404, "No node [nope] found".into())
    );
    let e = l
        .engine
        .provision(req("ok1.lab", "../etc"))
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 404);
    assert!(
        e.to_string()
            .starts_with("No os image [../etc] found in dir ["),
        "{e}"
    );
    let e = l.engine.provision(req("ok1.lab", "")).await.unwrap_err();
    assert_eq!(e.to_string(), "No OS string [] found");
    assert_eq!(l.engine.task_count(), 0);
    let e = l.engine.dismiss("ok1.lab").await.unwrap_err();
    assert_eq!(e.http_status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dismissal_stops_the_task_and_leaves_local() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let records_before = l.engine.records_version();
    let id = l.engine.provision(req("slow.lab", "sle")).await.unwrap();
    // Wait until it is past writing the install record.
    let node = l.wait_record("slow.lab", "sle-15.6-1.0").await;
    assert_eq!(l.engine.pxe_of(&node).os, "sle-15.6-1.0");
    // The version moves once the write has returned, a moment after the
    // file is visible: wait for it (bounded), it must come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while l.engine.records_version() <= records_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the running task's record write is announced to the views"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = l.engine.dismiss("slow.lab").await.unwrap();
    assert_eq!(stopped, id);
    // dismiss returns only after the task has ended.
    let t = l.engine.status(&id).unwrap();
    let r = t.result().expect("finished when dismiss returns");
    assert_eq!(r.code, 410);
    assert_eq!(r.json()["error"], "Stop provisioning thread by request");
    assert!(t.stopped());
    assert_eq!(l.records.configured_os(&node), "local");
    assert!(
        l.engine.dismiss("slow.lab").await.is_err(),
        "nothing runs any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reprovisions_leave_one_done_rest_dismissed() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let mut handles = Vec::new();
    for _ in 0..100 {
        let e = l.engine.clone();
        handles.push(tokio::spawn(async move {
            e.provision(req("ok1.lab", "sle")).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap());
    }
    let mut codes = std::collections::BTreeMap::new();
    for id in &ids {
        let t = finished(&l.engine, id).await;
        *codes.entry(t.result().unwrap().code).or_insert(0) += 1;
    }
    assert_eq!(codes, [(200u16, 1), (410, 99)].into_iter().collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_marks_running_tasks_interrupted() {
    let d = tempfile::tempdir().unwrap();
    // A store left behind by a server that died: one finished, one running.
    {
        let store = SqliteStore::open(&d.path().join("pelagos.db"))
            .await
            .unwrap();
        let mut done = TaskRow {
            end: Some(TaskEnd {
                time: pelagos_provision::now_secs() - 5,
                stopped: false,
                result: pelagos_provision::TaskResult::new(
                    200,
                    &serde_json::json!({"status": "done"}),
                ),
            }),
            ..TaskRow::running(
                "f".repeat(32),
                "ok1.lab".into(),
                "sle".into(),
                pelagos_provision::now_secs() - 10,
            )
        };
        store.finish(&done, "the old log\n").await.unwrap();
        done.id = "r".repeat(32);
        done.node = "ok2.lab".into();
        done.end = None;
        store.insert(&done).await.unwrap();
        // And one expired long ago.
        done.id = "e".repeat(32);
        done.end = Some(TaskEnd {
            time: 1000,
            stopped: false,
            result: pelagos_provision::TaskResult::new(200, &serde_json::json!({})),
        });
        store.finish(&done, "").await.unwrap();
    }
    let tftp = d.path().join("tftp");
    std::fs::create_dir_all(tftp.join("sle-15.6-1.0")).unwrap();
    let lab = LabConfig::parse(LAB).unwrap();
    let pre = BootRecords::new(&tftp, &lab);
    pre.write(
        lab.node("ok2.lab").unwrap(),
        &pre.resolve_os("sle-15.6-1.0").unwrap(),
    )
    .unwrap();

    let l = start(d.path()).await;
    assert_eq!(
        l.engine
            .status(&"f".repeat(32))
            .unwrap()
            .result()
            .unwrap()
            .code,
        200
    );
    assert_eq!(
        l.engine.log(&"f".repeat(32)).await.unwrap(),
        "the old log\n"
    );
    let r = l.engine.status(&"r".repeat(32)).unwrap();
    let res = r.result().unwrap();
    assert_eq!(
        (res.code, res.json()["error"].as_str().unwrap()),
        (500, "interrupted by server restart")
    );
    assert!(r.end_time() > 0);
    assert_eq!(
        l.records.configured_os(l.lab.node("ok2.lab").unwrap()),
        "local"
    );
    assert!(
        l.engine.status(&"e".repeat(32)).is_none(),
        "expired task dropped"
    );
    let store = SqliteStore::open(&d.path().join("pelagos.db"))
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_expire_after_data_life_time() {
    let d = tempfile::tempdir().unwrap();
    let l = start_with(d.path(), |t| t.data_life_time = Duration::from_secs(1)).await;
    let id = l.engine.provision(req("ok1.lab", "local")).await.unwrap();
    assert_eq!(finished(&l.engine, &id).await.result().unwrap().code, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while l.engine.status(&id).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "task never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(l.engine.log(&id).await.is_err());
    assert_eq!(l.engine.with_tasks(|rows| rows.len()), 0);
    let store = SqliteStore::open(&d.path().join("pelagos.db"))
        .await
        .unwrap();
    assert_eq!(
        store.log(&id).await.unwrap(),
        None,
        "expired from the store too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_running_tasks_and_refuses_new_ones() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let done = l.engine.provision(req("ok1.lab", "local")).await.unwrap();
    assert_eq!(finished(&l.engine, &done).await.result().unwrap().code, 200);
    let id = l.engine.provision(req("slow.lab", "sle")).await.unwrap();
    let node = l.wait_record("slow.lab", "sle-15.6-1.0").await;
    assert_eq!(l.engine.shutdown().await, 1);
    let t = l.engine.status(&id).unwrap();
    let r = t.result().unwrap();
    assert_eq!(
        (r.code, r.json()["error"].as_str().unwrap()),
        (500, pelagos_provision::INTERRUPTED)
    );
    assert_eq!(
        l.engine.status(&done).unwrap().result().unwrap().code,
        200,
        "finished task untouched"
    );
    assert_eq!(l.records.configured_os(&node), "local");
    let e = l
        .engine
        .provision(req("ok1.lab", "local"))
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 503);
    let log = l.engine.log(&id).await.unwrap();
    assert!(log.contains("Provision node [slow.lab]"), "{log}");
    assert!(log.ends_with("interrupted by server restart\n"), "{log}");
}

/// A provision request with extra salt states from `field`.
fn req_sls(node: &str, field: &str, extra_sls: &str) -> ProvisionRequest {
    ProvisionRequest {
        node: node.into(),
        os: "sle".into(),
        extra_sls: extra_sls.into(),
        extra_sls_field: field.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_extra_sls_is_refused_before_a_task_exists() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let node = l.lab.node("ok1.lab").unwrap().clone();
    l.engine.set_boot_record("ok1.lab", "local").await.unwrap();
    let record = l.records.record_path(&node);
    let before = std::fs::read(&record).unwrap();
    let too_many = (0..=pelagos_config::SLS_STATES_MAX)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    for (field, extra, bad) in [
        (
            "extra_sls",
            "--out-file=/root/.bashrc",
            "--out-file=/root/.bashrc",
        ),
        ("add_sls", "core -r", "-r"),
        ("extra_sls", "-c /tmp/x", "-c"),
        ("add_sls", "--roster-file x", "--roster-file"),
        ("extra_sls", r#"pillar={"a":1}"#, r#"pillar={"a":1}"#),
        ("add_sls", "../x", "../x"),
        ("", ".hidden", ".hidden"),
    ] {
        let e = l
            .engine
            .provision(req_sls("ok1.lab", field, extra))
            .await
            .unwrap_err();
        let shown = if field.is_empty() { "extra_sls" } else { field };
        assert_eq!(e.http_status(), 400, "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "invalid salt state name in form field `{shown}`: {bad:?} \
                 (allowed: letters, digits, _ . -, not starting with - or .)"
            )
        );
    }
    let e = l
        .engine
        .provision(req_sls("ok1.lab", "add_sls", &too_many))
        .await
        .unwrap_err();
    assert_eq!(
        (e.http_status(), e.to_string()),
        (
            400,
            "too many salt states in form field `add_sls`: 65 (at most 64)".into()
        )
    );
    assert_eq!(l.engine.task_count(), 0, "no task was created");
    assert_eq!(std::fs::read(&record).unwrap(), before, "record untouched");
    // Good names still go through.
    let id = l
        .engine
        .provision(req_sls("ok1.lab", "add_sls", " ceph.osd  a_b-c "))
        .await
        .unwrap();
    assert_eq!(finished(&l.engine, &id).await.result().unwrap().code, 200);
    let log = l.engine.log(&id).await.unwrap();
    assert!(log.contains("Applying salt state [a_b-c]"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_mac_cannot_have_a_boot_record() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let want = "node [nomac.lab] has no `mac`: it cannot have a boot record";
    let e = l
        .engine
        .set_boot_record("nomac.lab", "sle")
        .await
        .unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (409, want.into()));
    let e = l.engine.remove_boot_record("nomac.lab").await.unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (409, want.into()));
    let e = l
        .engine
        .provision(req("nomac.lab", "sle"))
        .await
        .unwrap_err();
    assert_eq!((e.http_status(), e.to_string()), (409, want.into()));
    assert_eq!(l.engine.task_count(), 0);
    // Unknown stays 404.
    let e = l.engine.set_boot_record("nope", "sle").await.unwrap_err();
    assert_eq!(e.http_status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_record_routes_wait_for_no_running_provision() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let id = l.engine.provision(req("slow.lab", "sle")).await.unwrap();
    let node = l.wait_record("slow.lab", "sle-15.6-1.0").await;
    let record = l.records.record_path(&node);
    let before = std::fs::read(&record).unwrap();
    let want = format!("node [slow.lab] is being provisioned by task {id}");
    let e = l
        .engine
        .set_boot_record("slow.lab", "local")
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().starts_with(&want), "{e}");
    let e = l.engine.remove_boot_record("slow.lab").await.unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert!(e.to_string().starts_with(&want), "{e}");
    assert_eq!(std::fs::read(&record).unwrap(), before, "record untouched");
    // Other nodes are not concerned.
    l.engine.set_boot_record("ok1.lab", "sle").await.unwrap();

    assert_eq!(l.engine.dismiss("slow.lab").await.unwrap(), id);
    let (_, os) = l.engine.set_boot_record("slow.lab", "sle").await.unwrap();
    assert_eq!(os, "sle-15.6-1.0");
    assert_eq!(l.records.configured_os(&node), "sle-15.6-1.0");
    l.engine.remove_boot_record("slow.lab").await.unwrap();
    assert!(!record.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writes_and_provision_starts_never_interleave() {
    // Many record writes racing provision starts of the same node: each
    // write either lands while no provision runs (200) or is refused (409);
    // never does a write land after a provision started, so each provision's
    // own install record is what the node has until that provision ends.
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let mut writers = Vec::new();
    for i in 0..40 {
        let e = l.engine.clone();
        writers.push(tokio::spawn(async move {
            if i % 2 == 0 {
                e.set_boot_record("slow.lab", "local").await.map(|_| ())
            } else {
                e.remove_boot_record("slow.lab").await.map(|_| ())
            }
        }));
    }
    let id = l.engine.provision(req("slow.lab", "sle")).await.unwrap();
    for w in writers {
        match w.await.unwrap() {
            Ok(()) => {}
            Err(e) => assert_eq!(e.http_status(), 409, "{e}"),
        }
    }
    let node = l.wait_record("slow.lab", "sle-15.6-1.0").await;
    let e = l.engine.remove_boot_record("slow.lab").await.unwrap_err();
    assert_eq!(e.http_status(), 409);
    assert_eq!(l.records.configured_os(&node), "sle-15.6-1.0");
    assert!(l.engine.status(&id).unwrap().result().is_none());
    l.engine.dismiss("slow.lab").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_argv_ends_options_with_double_dash_before_the_target() {
    // The production configurator over a stand-in salt-ssh that records its
    // argv (one argument per line, runs separated by `====`).
    let d = tempfile::tempdir().unwrap();
    let fake = d.path().join("fake-salt-ssh");
    let argv_log = d.path().join("argv.log");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {log}\necho ==== >> {log}\n\
             echo 'Succeeded: 1'\necho 'Failed:    0'\n",
            log = argv_log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &fake,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let roster = d.path().join("deploy.roster");
    std::fs::write(&roster, "ok1.lab:\n  user: root\n").unwrap();
    let salt = pelagos_provision::salt::SaltSsh {
        program: fake,
        roster_file: roster,
        config_dir: d.path().join("salt"),
        password: pelagos_config::Secret::new("Engine-Test-Secret"),
        priv_key: None,
        timeout: Duration::from_secs(30),
        temp_dir: None,
    };
    let l = start_full(
        d.path(),
        |_| {},
        |dr| dr.configurator = Arc::new(pelagos_provision::production::SaltConfigurator(salt)),
    )
    .await;
    // A list with a good state, then a bad one: refused before a task
    // exists, and salt-ssh never runs (not even for the good one).
    let e = l
        .engine
        .provision(req_sls("ok1.lab", "extra_sls", "ceph.osd -r"))
        .await
        .unwrap_err();
    assert_eq!(e.http_status(), 400, "{e}");
    assert_eq!(l.engine.task_count(), 0, "no task was created");
    assert!(
        !argv_log.exists(),
        "salt-ssh ran: {:?}",
        std::fs::read_to_string(&argv_log)
    );
    let id = l
        .engine
        .provision(req_sls("ok1.lab", "extra_sls", "ceph.osd"))
        .await
        .unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 200, "{t:?}");
    let text = std::fs::read_to_string(&argv_log).unwrap();
    let runs: Vec<Vec<&str>> = text
        .split_terminator("====\n")
        .map(|r| r.lines().collect())
        .collect();
    assert_eq!(runs.len(), 3, "core, ceph, ceph.osd: {text}");
    for (run, sls) in runs.iter().zip(["core", "ceph", "ceph.osd"]) {
        let dd = run
            .iter()
            .position(|a| *a == "--")
            .unwrap_or_else(|| panic!("no `--` in {run:?}"));
        assert_eq!(
            &run[dd - 1..],
            ["--key-deploy", "--", "ok1.lab", "state.apply", sls],
            "{run:?}"
        );
        assert_eq!(run.iter().filter(|a| **a == "--").count(), 1, "{run:?}");
        assert!(!run.contains(&"Engine-Test-Secret"), "{run:?}");
    }
}

/// The versions the server's cached views are checked against move after
/// every change they show, and never otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_versions_move_after_every_change() {
    let d = tempfile::tempdir().unwrap();
    let l = start(d.path()).await;
    let (tasks, records) = (l.engine.tasks_version(), l.engine.records_version());
    assert!(l.engine.status("nope").is_none());
    let _ = l.engine.known_node("ok1.lab").unwrap();
    let _ = l.engine.pxe_of(&l.lab.nodes[0]);
    l.engine.with_tasks(|rows| assert!(rows.is_empty()));
    assert_eq!(
        (l.engine.tasks_version(), l.engine.records_version()),
        (tasks, records),
        "reads change nothing"
    );

    let (node, os) = l.engine.set_boot_record("ok1.lab", "sle").await.unwrap();
    assert_eq!(
        (node.node.as_str(), os.as_str()),
        ("ok1.lab", "sle-15.6-1.0")
    );
    let records = records_moved(&l, records);
    assert_eq!(l.engine.pxe_of(&node).os, "sle-15.6-1.0");
    let node = l.engine.remove_boot_record("ok1.lab").await.unwrap();
    assert_eq!(node.node, "ok1.lab");
    let records = records_moved(&l, records);
    assert_eq!(tasks, l.engine.tasks_version(), "no task changed");

    // A task that starts, then ends: both move the task version.
    let id = l.engine.provision(req("ok1.lab", "local")).await.unwrap();
    let started = l.engine.tasks_version();
    assert!(started > tasks);
    finished(&l.engine, &id).await;
    // finish() announces after the store write; wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while l.engine.tasks_version() == started {
        assert!(tokio::time::Instant::now() < deadline, "end not announced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    records_moved(&l, records);
    let second = l.engine.provision(req("ok2.lab", "local")).await.unwrap();
    let order = l
        .engine
        .with_tasks(|rows| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    let mut want = vec![id.clone(), second.clone()];
    // Oldest first; within one second, by id.
    if l.engine.status(&id).unwrap().start_time == l.engine.status(&second).unwrap().start_time {
        want.sort();
    }
    assert_eq!(order, want);
    finished(&l.engine, &second).await;
}

fn records_moved(l: &Lab, before: u64) -> u64 {
    let now = l.engine.records_version();
    assert!(now > before, "record change not announced");
    now
}

/// A lab for the OS check: `ok.lab` boots what its record says,
/// `disk.lab` (`wrong_os`) ignores its PXE record and boots its disk. The
/// TFTP root holds `alpha-1.0` (a manifest recording its OS identity) and
/// the hand-made `handmade-1` (no manifest).
async fn start_verify(dir: &Path, verify_os: bool) -> Lab {
    let lab = Arc::new(
        LabConfig::parse(&format!(
            r#"{{"sls_list": "core", "verify_os": {verify_os}, "nodes": [
                {{"node": "ok.lab", "mac": "aa:bb:cc:dd:ee:11", "ip": "10.0.0.11"}},
                {{"node": "disk.lab", "mac": "aa:bb:cc:dd:ee:12", "ip": "10.0.0.12", "sim": {{"wrong_os": true}}}}
            ]}}"#
        ))
        .unwrap(),
    );
    let tftp = dir.join("tftp");
    let alpha = tftp.join("alpha-1.0");
    std::fs::create_dir_all(&alpha).unwrap();
    for f in ["pxeboot.kernel", "pxeboot.initrd.xz", "alpha.xz"] {
        std::fs::write(alpha.join(f), "").unwrap();
    }
    std::fs::write(
        alpha.join("image.json"),
        r#"{"name": "alpha", "version": "1.0", "kernel": "pxeboot.kernel",
            "initrd": "pxeboot.initrd.xz", "image": "alpha.xz", "files": [],
            "installed": "2026-11-30T00:00:00Z",
            "os": {"id": "alpha", "version_id": "1.0", "image_id": "e2e-alpha-1"}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(tftp.join("handmade-1")).unwrap();
    let timing = SimMode::Fast.timing(&lab.timing);
    engine_on(dir, lab, &tftp, timing, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_running_the_requested_image_is_done() {
    let d = tempfile::tempdir().unwrap();
    let l = start_verify(d.path(), true).await;
    let id = l.engine.provision(req("ok.lab", "alpha")).await.unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 200, "{:?}", t.result());
    let log = l.engine.log(&id).await.unwrap();
    let checked = log
        .find("Node [ok.lab] runs [alpha-1.0] (ID=alpha VERSION_ID=1.0 image=e2e-alpha-1)")
        .unwrap_or_else(|| panic!("no OS check in the log:\n{log}"));
    // Checked before the record goes back to local and salt runs.
    let local = log
        .find("Boot record of node [ok.lab] set to [local]")
        .unwrap();
    assert!(checked < local, "{log}");
    assert!(log.contains("Applying salt state [core]"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_running_another_os_fails_502_naming_both() {
    let d = tempfile::tempdir().unwrap();
    let l = start_verify(d.path(), true).await;
    let id = l.engine.provision(req("disk.lab", "alpha")).await.unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 502, "{:?}", t.result());
    assert_eq!(
        error_of(&t),
        "Node [disk.lab] runs ID=sim-disk VERSION_ID=1 image=- instead of the requested image \
         [alpha-1.0] (ID=alpha VERSION_ID=1.0 image=e2e-alpha-1)"
    );
    assert!(!t.stopped());
    // Record back to local, the error in the task's log, salt never ran.
    assert_left_local(&l, "disk.lab", &id).await;
    let log = l.engine.log(&id).await.unwrap();
    assert!(!log.contains("Applying salt state"), "{log}");
    // The same node is done for an OS it runs: `local` is not checked.
    let id = l.engine.provision(req("disk.lab", "local")).await.unwrap();
    assert_eq!(finished(&l.engine, &id).await.result().unwrap().code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_os_false_skips_the_check_with_a_log_line() {
    let d = tempfile::tempdir().unwrap();
    let l = start_verify(d.path(), false).await;
    let id = l.engine.provision(req("disk.lab", "alpha")).await.unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 200, "{:?}", t.result());
    let log = l.engine.log(&id).await.unwrap();
    assert!(
        log.contains("verify_os is off: not checking which OS node [disk.lab] runs"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_identity_is_not_checked_but_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let l = start_verify(d.path(), true).await;
    let id = l
        .engine
        .provision(req("disk.lab", "handmade-1"))
        .await
        .unwrap();
    let t = finished(&l.engine, &id).await;
    assert_eq!(t.result().unwrap().code, 200, "{:?}", t.result());
    let log = l.engine.log(&id).await.unwrap();
    assert!(
        log.contains(
            "cannot verify the OS of node [disk.lab]: image [handmade-1] records no OS identity; \
             reinstall it with add-image or set verify_os: false"
        ),
        "{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("records no OS identity"))
        .unwrap();
    assert!(line.contains("| WARN |"), "{line}");
}
