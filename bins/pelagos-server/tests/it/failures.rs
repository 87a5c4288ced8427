//! Each failure class of the simulated lab ends with its own code, and the
//! status routes keep answering afterwards.

use crate::{Fixture, Server};

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
