//! Task state survives a crash of the server.

use crate::{Fixture, IMAGE, Server, until};
use serde_json::json;

#[tokio::test]
async fn killed_server_restarts_with_its_tasks() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);
    let done = s.start_provision("ok1.lab", "sle").await;
    assert_eq!(s.wait_task(&done).await.0, 200);
    let running: Vec<String> = vec![
        s.start_provision("slow1.lab", "sle").await,
        s.start_provision("slow2.lab", "sle").await,
    ];
    // Both are past writing their install records.
    for node in ["slow1.lab", "slow2.lab"] {
        until("install record", async || {
            let (_, v) = s.get_json(&format!("/node/{node}")).await;
            v["pxe"]["os"] == IMAGE
        })
        .await;
    }
    s.kill();

    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json(&format!("/tasks/status/{done}")).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")));
    let (_, log) = s.get_json(&format!("/tasks/log/{done}")).await;
    assert!(
        log["LogData"]
            .as_str()
            .unwrap()
            .contains("Connected to node [ok1.lab]")
    );
    for id in &running {
        let (code, v) = s.get_json(&format!("/tasks/status/{id}")).await;
        assert_eq!(
            (code, v),
            (500, json!({"error": "interrupted by server restart"}))
        );
    }
    for node in ["slow1.lab", "slow2.lab"] {
        let (_, v) = s.get_json(&format!("/node/{node}")).await;
        assert_eq!(v["pxe"]["os"], "local", "{node} record reset");
    }
    let (code, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(code, 200);
    assert_eq!(v.as_object().unwrap().len(), 3);
    assert_eq!(
        v[&running[0]]["rv"]["error"],
        "interrupted by server restart"
    );
    // The restarted server provisions again.
    let again = s.start_provision("slow1.lab", "local").await;
    let r = s.post_form("/node/dismiss", &[("node", "slow1.lab")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.wait_task(&again).await.0, 410);
}

#[tokio::test]
async fn terminated_server_keeps_logs_of_interrupted_tasks() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);
    let id = s.start_provision("slow1.lab", "sle").await;
    until("install record", async || {
        let (_, v) = s.get_json("/node/slow1.lab").await;
        v["pxe"]["os"] == IMAGE
    })
    .await;
    s.terminate();

    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json(&format!("/tasks/status/{id}")).await;
    assert_eq!(
        (code, v),
        (500, json!({"error": "interrupted by server restart"}))
    );
    let (_, log) = s.get_json(&format!("/tasks/log/{id}")).await;
    let log = log["LogData"].as_str().unwrap();
    assert!(log.contains("Provision node [slow1.lab]"), "{log}");
    assert!(log.ends_with("interrupted by server restart\n"), "{log}");
    assert!(!log.contains("Stop provisioning thread"), "{log}");
    let (_, v) = s.get_json("/node/slow1.lab").await;
    assert_eq!(v["pxe"]["os"], "local");
}
