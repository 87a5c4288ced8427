//! Each failure class of the simulated lab ends with its own code, and the
//! status routes keep answering afterwards.

use crate::{Fixture, IMAGE, Server, read, until};
use serde_json::json;

#[tokio::test]
async fn every_failure_code() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);
    let mut ids = Vec::new();
    for node in ["bmc.lab", "stall.lab", "hang.lab", "salt.lab"] {
        ids.push(s.start_provision(node, "sle").await);
    }
    let (code, v) = s.wait_task(&ids[0]).await;
    assert_eq!(code, 502);
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("BMCException"), "{msg}");
    assert!(!msg.contains("very-secret"));

    let (code, v) = s.wait_task(&ids[1]).await;
    assert_eq!(code, 502);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Caught CannotBootException"),
        "{v}"
    );
    let (_, log) = s.get_json(&format!("/tasks/log/{}", ids[1])).await;
    assert!(
        log["LogData"]
            .as_str()
            .unwrap()
            .contains("cold restart 3/3"),
        "{log}"
    );

    let (code, v) = s.wait_task(&ids[2]).await;
    assert_eq!(code, 504);
    assert_eq!(
        v["error"],
        "Caught TimeoutException 10.0.0.5 have not started in timeout 6"
    );

    let (code, v) = s.wait_task(&ids[3]).await;
    assert_eq!(code, 500);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Salt execution failed"),
        "{v}"
    );

    let (code, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(code, 200);
    let codes: Vec<_> = ids
        .iter()
        .map(|id| v[id]["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, ["done"; 4]);
    assert!(
        v[&ids[2]]["rv"]["error"]
            .as_str()
            .unwrap()
            .contains("TimeoutException")
    );
}

#[tokio::test]
async fn a_node_without_mac_answers_409_on_the_record_routes() {
    let fx = Fixture::new();
    let lab = crate::LAB.replacen(
        r#""nodes": ["#,
        r#""nodes": [ {"node": "nomac.lab", "ip": "10.0.0.9"},"#,
        1,
    );
    assert_ne!(lab, crate::LAB);
    std::fs::write(fx.path("lab.json"), lab).unwrap();
    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json("/node/nomac.lab").await;
    assert_eq!((code, &v["node"]["node"]), (200, &json!("nomac.lab")));
    let tftp_files = || files_under(&fx.path("tftp"));
    let before = tftp_files();
    let want = json!({"error": "node [nomac.lab] has no `mac`: it cannot have a boot record"});

    assert_eq!(
        s.get_json("/node/bootrecord/nomac.lab/sle").await,
        (409, want.clone())
    );
    assert_eq!(
        s.get_json("/node/rmbootrecord/nomac.lab").await,
        (409, want.clone())
    );
    let r = s.provision("nomac.lab", "sle").await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), want);
    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v, json!({}), "no task was created");
    assert_eq!(tftp_files(), before, "nothing written under the TFTP root");
}

#[tokio::test]
async fn record_routes_answer_409_while_the_node_is_provisioned() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);
    let id = s.start_provision("slow1.lab", "sle").await;
    until("the install record of slow1.lab", async || {
        s.get_json("/node/slow1.lab").await.1["pxe"]["os"] == IMAGE
    })
    .await;
    let pxe_file = fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-07");
    let before = read(&pxe_file);
    assert!(before.starts_with(&format!("# os={IMAGE}\n")), "{before}");
    let busy = format!("node [slow1.lab] is being provisioned by task {id}");

    for path in [
        "/node/bootrecord/slow1.lab/local",
        "/node/bootrecord/slow1.lab/sle",
        "/node/rmbootrecord/slow1.lab",
    ] {
        let (code, v) = s.get_json(path).await;
        assert_eq!(code, 409, "{path}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with(&busy), "{path}: {msg}");
    }
    assert_eq!(read(&pxe_file), before, "the record is unchanged");
    assert_eq!(s.get(&format!("/tasks/status/{id}")).await.status(), 202);
    // Another node is not concerned.
    assert_eq!(s.get_json("/node/bootrecord/ok1.lab/sle").await.0, 200);

    let r = s.post_form("/node/dismiss", &[("node", "slow1.lab")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.wait_task(&id).await.0, 410);
    let (code, v) = s.get_json("/node/bootrecord/slow1.lab/sle").await;
    assert_eq!((code, &v["os"]), (200, &json!(IMAGE)), "{v}");
    assert!(read(&pxe_file).starts_with(&format!("# os={IMAGE}\n")));
    assert_eq!(s.get_json("/node/rmbootrecord/slow1.lab").await.0, 200);
    assert!(!pxe_file.exists());
}

/// Every file under `dir`, recursively, with its contents.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}
