//! Lab changes without losing running work: the lab config reloaded by
//! `POST /api/v1/reload` and by SIGHUP while provisions run, a file that
//! does not load refused (the old lab kept, the problems answered and
//! logged), and nodes with problems of their own disabled instead of the
//! whole lab (the original project's integration-test lab).

use crate::{Fixture, IMAGE, Server, read, until};
use serde_json::{Value, json};
use std::process::Command;

/// A lab of `nodes` (JSON objects), in fast simulation.
fn lab(nodes: &[Value]) -> String {
    json!({ "default_pxe_server": "10.0.0.254", "sls_list": "core", "nodes": nodes }).to_string()
}

/// A node booting in `boot_time` seconds of simulated time.
fn node(name: &str, n: u8, boot_time: f64) -> Value {
    json!({
        "node": name,
        "mac": format!("aa:bb:cc:dd:ee:{n:02x}"),
        "ip": format!("10.0.0.{n}"),
        "sim": { "boot_time": boot_time },
    })
}

/// The server on the fixture's `lab.json` with its stderr (warnings and
/// up) in `<fixture>/server.log`.
fn start(fx: &Fixture, extra: &[&str]) -> Server {
    let mut cmd = fx.server_command();
    cmd.args(extra);
    Server::spawn(cmd, Some(&fx.path("server.log")))
}

fn write_lab(fx: &Fixture, text: &str) {
    std::fs::write(fx.path("lab.json"), text).unwrap();
}

fn hangup(s: &Server) {
    let status = Command::new("kill")
        .args(["-HUP", &s.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn reload(s: &Server) -> (u16, Value) {
    let r = s.http.post(s.u("/api/v1/reload")).send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap())
}

async fn node_names(s: &Server) -> Vec<String> {
    let (code, v) = s.get_json("/nodes").await;
    assert_eq!(code, 200);
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn task_log(s: &Server, id: &str) -> String {
    let (_, v) = s.get_json(&format!("/tasks/log/{id}")).await;
    v["LogData"].as_str().unwrap().to_owned()
}

/// Until the node's install record is written: its provision runs.
async fn installing(s: &Server, node: &str) {
    until(&format!("{node}'s install record"), async || {
        let (_, v) = s.get_json(&format!("/node/{node}")).await;
        v["pxe"]["os"] == IMAGE
    })
    .await;
}

/// Provisions running across a reload (POST, then SIGHUP) finish done
/// with the node they started with; nodes the reload added can be
/// provisioned, removed ones cannot, and a removed node's running task is
/// told so in its log and finishes normally.
#[tokio::test]
async fn provisions_run_on_across_reloads() {
    let fx = Fixture::new();
    let (ok1, run1, run2, gone) = (
        node("ok1.lab", 1, 1.0),
        node("run1.lab", 2, 4.0),
        node("run2.lab", 3, 4.0),
        node("gone.lab", 4, 4.0),
    );
    write_lab(
        &fx,
        &lab(&[ok1.clone(), run1.clone(), run2.clone(), gone.clone()]),
    );
    let s = start(&fx, &[]);

    // POST: run1 changed, gone removed, new1 added, while run1 and gone run.
    let t_run1 = s.start_provision("run1.lab", "sle").await;
    let t_gone = s.start_provision("gone.lab", "sle").await;
    installing(&s, "run1.lab").await;
    installing(&s, "gone.lab").await;
    let mut run1_changed = run1.clone();
    run1_changed["comment"] = json!("moved to rack 7");
    let new1 = node("new1.lab", 5, 1.0);
    write_lab(
        &fx,
        &lab(&[ok1.clone(), run1_changed, run2.clone(), new1.clone()]),
    );
    let (code, v) = reload(&s).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "reloaded");
    assert_eq!(v["nodes"], 4);
    assert_eq!(v["added"], json!(["new1.lab"]));
    assert_eq!(v["removed"], json!(["gone.lab"]));
    assert_eq!(v["changed"], json!(["run1.lab"]));
    assert_eq!(v["disabled"], json!([]));
    let mut running: Vec<(String, String)> = v["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["task_id"].as_str().unwrap().to_owned(),
                r["node"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    running.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        running,
        [
            (t_gone.clone(), "gone.lab".to_owned()),
            (t_run1.clone(), "run1.lab".to_owned())
        ],
        "both ran across the reload"
    );

    // New requests see the new lab at once.
    assert_eq!(
        node_names(&s).await,
        ["ok1.lab", "run1.lab", "run2.lab", "new1.lab"]
    );
    let (_, v) = s.get_json("/node/run1.lab").await;
    assert_eq!(v["node"]["comment"], "moved to rack 7");
    let r = s.provision("gone.lab", "sle").await;
    assert_eq!(r.status().as_u16(), 404, "a removed node is unknown");
    let t_new1 = s.start_provision("new1.lab", "sle").await;

    // The running ones finish as they started.
    let (code, v) = s.wait_task(&t_run1).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
    assert_eq!(v["node"], run1, "the node as it was when the task started");
    let (code, v) = s.wait_task(&t_gone).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
    let log = task_log(&s, &t_gone).await;
    assert!(
        log.contains("Node [gone.lab] was removed from the lab config by a reload"),
        "{log}"
    );
    let log = task_log(&s, &t_run1).await;
    assert!(
        log.contains("Node [run1.lab] was changed in the lab config by a reload"),
        "{log}"
    );
    assert!(!log.contains("removed"), "{log}");
    let (code, v) = s.wait_task(&t_new1).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
    let server_log = read(&fx.path("server.log"));
    assert!(
        server_log.contains("Node [gone.lab] was removed from the lab config by a reload"),
        "{server_log}"
    );

    // SIGHUP: run2 changed, new2 added, while run2 runs.
    let t_run2 = s.start_provision("run2.lab", "sle").await;
    installing(&s, "run2.lab").await;
    let mut run2_changed = run2.clone();
    run2_changed["comment"] = json!("new disk");
    write_lab(
        &fx,
        &lab(&[ok1, run2_changed, new1, node("new2.lab", 6, 1.0)]),
    );
    hangup(&s);
    until("the SIGHUP reload", async || {
        node_names(&s).await.contains(&"new2.lab".to_owned())
    })
    .await;
    assert_eq!(
        node_names(&s).await,
        ["ok1.lab", "run2.lab", "new1.lab", "new2.lab"]
    );
    let (code, v) = s.wait_task(&t_run2).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
    assert_eq!(v["node"], run2);
    let log = task_log(&s, &t_run2).await;
    assert!(
        log.contains("Node [run2.lab] was changed in the lab config by a reload"),
        "the task ran across the SIGHUP reload: {log}"
    );
    let t_new2 = s.start_provision("new2.lab", "sle").await;
    let (code, v) = s.wait_task(&t_new2).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
    // Boot records follow the reloaded lab: run1 (removed since) is not
    // listed, new2's record is `local` after its provision.
    let (_, v) = s.get_json("/nodes").await;
    assert!(v["pxe"].get("run1.lab").is_none(), "{v}");
    assert_eq!(v["pxe"]["new2.lab"]["os"], "local");
}

/// A file that does not load is refused whole, by POST (422, every
/// problem naming node, field and value) and by SIGHUP (logged), and the
/// lab loaded before is served on.
#[tokio::test]
async fn a_file_that_does_not_load_keeps_the_old_lab() {
    let fx = Fixture::new();
    let (ok1, ok2) = (node("ok1.lab", 1, 1.0), node("ok2.lab", 2, 1.0));
    write_lab(&fx, &lab(&[ok1.clone(), ok2.clone()]));
    let s = start(&fx, &[]);
    let before = s.get_json("/nodes").await;

    // Not JSON at all.
    write_lab(&fx, "{ \"nodes\": [ ");
    let (code, v) = reload(&s).await;
    assert_eq!(code, 422, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("lab.json"), "{v}");
    assert_eq!(v["problems"][0]["scope"], "lab", "{v}");
    assert_eq!(s.get_json("/nodes").await, before);

    // Two nodes of one name (lab-wide) and a bad MAC (the node's own).
    let mut bad = node("new.lab", 3, 1.0);
    bad["mac"] = json!("aa.bb.cc.dd:68:73");
    write_lab(&fx, &lab(&[ok1.clone(), ok1.clone(), bad]));
    let (code, v) = reload(&s).await;
    assert_eq!(code, 422, "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems.contains(&json!({
            "node": "ok1.lab", "field": "node", "value": "ok1.lab",
            "message": "duplicate: already used by node [ok1.lab]", "scope": "lab"
        })),
        "{v}"
    );
    assert!(
        problems.iter().any(|p| p["node"] == "new.lab"
            && p["field"] == "mac"
            && p["value"] == "aa.bb.cc.dd:68:73"
            && p["scope"] == "node"),
        "{v}"
    );
    assert_eq!(s.get_json("/nodes").await, before);

    // No nodes, by SIGHUP: logged, the old lab kept.
    let refusals = || {
        read(&fx.path("server.log"))
            .matches("still serving the lab loaded before")
            .count()
    };
    assert_eq!(refusals(), 2, "each POST refusal is logged");
    write_lab(&fx, &lab(&[]));
    hangup(&s);
    until("the refused reload's log line", async || refusals() == 3).await;
    let log = read(&fx.path("server.log"));
    assert!(log.contains("the lab has no nodes"), "{log}");
    assert_eq!(s.get_json("/nodes").await, before);
    let id = s.start_provision("ok2.lab", "sle").await;
    assert_eq!(s.wait_task(&id).await.0, 200);

    // Fixed: it loads.
    write_lab(&fx, &lab(&[ok1, ok2, node("new.lab", 3, 1.0)]));
    let (code, v) = reload(&s).await;
    assert_eq!((code, &v["added"]), (200, &json!(["new.lab"])), "{v}");
}

/// The original project's integration-test lab writes MACs such as
/// `aa.bb.cc.dd:68:73`: the server starts with that node disabled (logged
/// once, listed with its problems, 409 naming node, field and value on
/// provision and the boot-record routes) and provisions the others; a
/// reload that fixes the node enables it.
#[tokio::test]
async fn a_bad_node_is_disabled_not_the_lab() {
    let fx = Fixture::new();
    let good1 = node("good1.lab", 1, 1.0);
    let good2 = node("good2.lab", 2, 1.0);
    let mut bad = node("bad.lab", 3, 1.0);
    bad["mac"] = json!("aa.bb.cc.dd:68:73");
    write_lab(&fx, &lab(&[good1.clone(), bad.clone(), good2.clone()]));
    let s = start(&fx, &[]);

    let log = read(&fx.path("server.log"));
    assert_eq!(
        log.matches("aa.bb.cc.dd:68:73").count(),
        1,
        "the problem is logged once: {log}"
    );
    assert!(
        log.contains("node [bad.lab] field `mac` = \"aa.bb.cc.dd:68:73\""),
        "{log}"
    );

    let (code, v) = s.get_json("/nodes").await;
    assert_eq!(code, 200);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes[0], good1, "a usable node is its record, no more");
    assert_eq!(nodes[2], good2);
    let problems = nodes[1]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert_eq!(problems[0]["field"], "mac");
    assert_eq!(problems[0]["value"], "aa.bb.cc.dd:68:73");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("not a MAC address"),
        "{v}"
    );
    let mut listed = nodes[1].clone();
    listed.as_object_mut().unwrap().remove("problems");
    assert_eq!(listed, bad, "the rest is the record as written");
    let (_, v) = s.get_json("/node/bad.lab").await;
    assert_eq!(v["node"]["problems"][0]["field"], "mac");

    for path in [
        "/node/bootrecord/bad.lab/local",
        "/node/rmbootrecord/bad.lab",
    ] {
        let (code, v) = s.get_json(path).await;
        assert_eq!(code, 409, "{path}: {v}");
        assert_eq!(v["problems"][0]["value"], "aa.bb.cc.dd:68:73");
    }
    let r = s.provision("bad.lab", "sle").await;
    assert_eq!(r.status().as_u16(), 409);
    let v: Value = r.json().await.unwrap();
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("node [bad.lab] is disabled")
            && error.contains("field `mac`")
            && error.contains("aa.bb.cc.dd:68:73"),
        "{error}"
    );
    assert_eq!(v["problems"][0]["node"], "bad.lab");
    let (_, statuses) = s.get_json("/tasks/statuses").await;
    assert_eq!(statuses, json!({}), "no task for the disabled node");

    for name in ["good1.lab", "good2.lab"] {
        let id = s.start_provision(name, "sle").await;
        let (code, v) = s.wait_task(&id).await;
        assert_eq!((code, &v["status"]), (200, &json!("done")), "{name}: {v}");
    }

    // Fixed by a reload: enabled.
    write_lab(&fx, &lab(&[good1, node("bad.lab", 3, 1.0), good2]));
    let (code, v) = reload(&s).await;
    assert_eq!((code, &v["changed"]), (200, &json!(["bad.lab"])), "{v}");
    let id = s.start_provision("bad.lab", "sle").await;
    assert_eq!(s.wait_task(&id).await.0, 200);
    let (_, v) = s.get_json("/nodes").await;
    assert!(v["nodes"][1].get("problems").is_none(), "{v}");
}

/// A lab-wide problem still refuses to start, naming it.
#[test]
fn a_lab_wide_problem_refuses_to_start() {
    let fx = Fixture::new();
    let one = node("one.lab", 1, 1.0);
    write_lab(&fx, &lab(&[one.clone(), one]));
    let out = fx
        .server_command()
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot load --config")
            && err.contains("node [one.lab] field `node` = \"one.lab\": duplicate"),
        "{err}"
    );
}

/// `POST /api/v1/reload` needs credentials like every route that is not
/// open.
#[tokio::test]
async fn reload_needs_credentials() {
    let fx = Fixture::new();
    let hash = bcrypt::hash("reload-pw", 4).unwrap();
    std::fs::write(fx.path("htpasswd"), format!("admin:{hash}\n")).unwrap();
    let htpasswd = fx.path("htpasswd");
    let s = start(&fx, &["--htpasswd", htpasswd.to_str().unwrap()]);
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let r = s
            .http
            .request(method.clone(), s.u("/api/v1/reload"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{method}");
    }
    let r = s
        .http
        .post(s.u("/api/v1/reload"))
        .basic_auth("admin", Some("reload-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
