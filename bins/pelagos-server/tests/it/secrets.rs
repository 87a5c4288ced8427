//! The lab's passwords (`ipmi_pass`, `target_node_password`) never reach an
//! API answer (bodies and headers of every route, failures included), a
//! task log, or the server's state directory.

use crate::{Fixture, IMAGE, Server};
use std::path::Path;

const SECRETS: [&str; 2] = ["very-secret-bmc-pw", "very-secret-root-pw"];

/// Panics when `text` holds a password (or the fixture's common prefix).
fn assert_clean(what: &str, text: &str) {
    for s in SECRETS.iter().chain(&["very-secret"]) {
        assert!(!text.contains(s), "{what} shows a password ({s}):\n{text}");
    }
}

/// Status, headers and body of a response, checked; the body.
async fn checked(what: &str, r: reqwest::Response) -> (u16, String) {
    let code = r.status().as_u16();
    let headers = format!("{:?}", r.headers());
    assert_clean(&format!("{what} headers"), &headers);
    let body = r.text().await.unwrap();
    assert_clean(&format!("{what} body"), &body);
    (code, body)
}

/// Every file under `dir`, read as bytes, holds no password.
fn assert_dir_clean(dir: &Path) {
    let mut seen = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert_clean(&p.display().to_string(), &text);
            seen += 1;
        }
    }
    assert!(seen > 0, "nothing in the state dir {}", dir.display());
}

#[tokio::test]
async fn no_route_and_no_task_log_shows_a_password() {
    let fx = Fixture::new();
    let lab = std::fs::read_to_string(fx.path("lab.json")).unwrap();
    for s in SECRETS {
        assert!(lab.contains(s), "the fixture lab must hold {s}");
    }
    let s = Server::start(&fx, &[]);
    let nodes = [
        "ok1.lab",
        "ok2.lab",
        "bmc.lab",
        "stall.lab",
        "hang.lab",
        "salt.lab",
        "slow1.lab",
        "slow2.lab",
    ];

    // Read-only routes, found and not found.
    let mut gets: Vec<String> = [
        "/",
        "/version",
        "/nodes",
        "/check_image/sle",
        "/check_image/local",
        "/check_image/nosuch",
        "/node/nope.lab",
        "/node/bootrecord/ok1.lab/sle",
        "/node/bootrecord/ok1.lab/nosuch",
        "/node/rmbootrecord/ok1.lab",
        "/node/rmbootrecord/nope.lab",
        "/tasks/status/nosuch",
        "/tasks/log/nosuch",
        "/no/such/route",
    ]
    .map(str::to_owned)
    .to_vec();
    gets.extend(nodes.iter().map(|n| format!("/node/{n}")));
    gets.push(format!("/images/{IMAGE}/{IMAGE}.xz"));
    gets.push("/images/../lab.json".to_owned());
    for path in &gets {
        checked(path, s.get(path).await).await;
    }

    // Provisions of every outcome class, one dismissed, bad requests too.
    let mut ids = Vec::new();
    for node in nodes {
        let r = s.provision(node, "sle").await;
        let id = r.headers()["taskid"].to_str().unwrap().to_owned();
        let (code, _) = checked(&format!("provision {node}"), r).await;
        assert_eq!(code, 202, "provision {node}");
        ids.push(id);
    }
    for (node, os) in [("nope.lab", "sle"), ("ok1.lab", "nosuch"), ("ok1.lab", "")] {
        let r = s.provision(node, os).await;
        let (code, _) = checked(&format!("provision {node} {os:?}"), r).await;
        assert!(code >= 400, "provision {node} {os:?}: {code}");
    }
    let r = s.post_form("/node/dismiss", &[("node", "slow1.lab")]).await;
    assert_eq!(checked("dismiss slow1.lab", r).await.0, 200);
    let r = s
        .post_form("/tasks/node/dismiss", &[("node", "nope.lab")])
        .await;
    assert_eq!(checked("dismiss nope.lab", r).await.0, 404);

    // A running task's status and log (slow2 boots for minutes).
    let running = &ids[7];
    let (code, _) = checked(
        "running status",
        s.get(&format!("/tasks/status/{running}")).await,
    )
    .await;
    assert_eq!(code, 202);
    checked("running log", s.get(&format!("/tasks/log/{running}")).await).await;

    // Every other task to its end: status, statuses and logs.
    let mut codes = Vec::new();
    for (node, id) in nodes.iter().zip(&ids) {
        if id == running {
            continue;
        }
        let (code, v) = s.wait_task(id).await;
        assert_clean(&format!("status of {node}"), &v.to_string());
        codes.push(code);
        let (_, log) = checked(
            &format!("log of {node}"),
            s.get(&format!("/tasks/log/{id}")).await,
        )
        .await;
        assert!(log.contains(&format!("Provision node [{node}]")), "{log}");
    }
    codes.sort_unstable();
    assert_eq!(
        codes,
        [200, 200, 410, 500, 502, 502, 504],
        "every class ran"
    );
    checked("statuses", s.get("/tasks/statuses").await).await;
    checked("nodes after", s.get("/nodes").await).await;

    // Stored task logs and results too.
    s.terminate();
    assert_dir_clean(&fx.path("state"));
}
