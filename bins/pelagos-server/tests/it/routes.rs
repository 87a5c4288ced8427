//! Every compatible route, its fields, codes and headers.

use crate::{Fixture, IMAGE, Server, read};
use serde_json::json;

#[tokio::test]
async fn info_routes_and_boot_records() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);

    let r = s.get("/").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("Network controller service")
    );
    let (code, v) = s.get_json("/version").await;
    assert_eq!((code, &v["app"]), (200, &json!("pelagos")));
    assert!(v["version"].is_string());

    let (code, v) = s.get_json("/nodes").await;
    assert_eq!(code, 200);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 8);
    // The record as the lab config wrote it: original keys, `sim` included.
    assert_eq!(
        v["nodes"][0],
        json!({"node": "ok1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "bmc_ip": "10.1.0.1", "comment": "first"})
    );
    assert_eq!(
        v["pxe"]["ok1.lab"]["os"],
        "Default config is used: pxelinux.cfg/default"
    );
    let pxe_file = fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01");
    assert_eq!(
        v["pxe"]["ok1.lab"]["pxe_file"],
        pxe_file.display().to_string()
    );
    let text = s.get("/nodes").await.text().await.unwrap();
    assert!(!text.contains("very-secret"), "secrets in /nodes");

    let (code, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(code, 200);
    assert_eq!(v["node"]["comment"], "first");
    assert_eq!(v["pxe"]["pxe_file"], pxe_file.display().to_string());
    let (code, v) = s.get_json("/node/nope.lab").await;
    assert_eq!(
        (code, v),
        (404, json!({"error": "No node [nope.lab] found"}))
    );

    let (code, v) = s.get_json("/check_image/sle").await;
    assert_eq!((code, v), (200, json!({"os": IMAGE})));
    let (code, v) = s.get_json("/check_image/local").await;
    assert_eq!((code, v), (200, json!({"os": "local"})));
    let (code, v) = s.get_json("/check_image/nosuch").await;
    assert_eq!(code, 404);
    assert_eq!(
        v["error"],
        format!(
            "No os image [nosuch] found in dir [{}]",
            fx.path("tftp").display()
        )
    );
    let (code, _) = s.get_json("/check_image/..%2Fetc").await;
    assert_eq!(code, 404);

    let (code, v) = s.get_json("/node/bootrecord/ok1.lab/sle").await;
    assert_eq!(code, 200);
    assert_eq!(v["status"], "single boot record set");
    assert_eq!(v["os"], IMAGE);
    assert_eq!(v["node"]["node"], "ok1.lab");
    assert!(read(&pxe_file).starts_with(&format!("# os={IMAGE}\n# node=ok1.lab\n")));
    let (_, v) = s.get_json("/nodes").await;
    assert_eq!(
        v["pxe"]["ok1.lab"]["os"], IMAGE,
        "/nodes cache follows record writes"
    );
    let (code, _) = s.get_json("/node/bootrecord/ok1.lab/nosuch").await;
    assert_eq!(code, 404);
    let (code, _) = s.get_json("/node/bootrecord/nope/sle").await;
    assert_eq!(code, 404);
    assert!(
        read(&pxe_file).starts_with(&format!("# os={IMAGE}\n")),
        "failed request wrote nothing"
    );

    let (code, v) = s.get_json("/node/rmbootrecord/ok1.lab").await;
    assert_eq!(code, 200);
    assert_eq!(v["status"], "dedicated boot record removed");
    assert!(!pxe_file.exists());
    let (_, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(
        v["pxe"]["os"],
        "Default config is used: pxelinux.cfg/default"
    );
    let (code, _) = s.get_json("/node/rmbootrecord/nope").await;
    assert_eq!(code, 404);

    let r = s.http.post(s.u("/nodes")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let (code, v) = s.get_json("/no/such/route").await;
    assert_eq!(code, 404);
    assert!(v["error"].is_string());
}

#[tokio::test]
async fn provision_status_log_and_dismiss() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);

    // Validation answers at once; no task is created.
    let r = s.provision("nope.lab", "sle").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "No node [nope.lab] found"})
    );
    let r = s.provision("ok1.lab", "nosuch").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("No os image [nosuch] found in dir [")
    );
    let r = s.post_form("/node/provision", &[("node", "ok1.lab")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`os`"));
    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v, json!({}));

    // urlencoded: 202, absolute Location from Host, TaskID.
    let r = s.provision("ok1.lab", "sle").await;
    assert_eq!(r.status(), 202);
    let id = r.headers()["taskid"].to_str().unwrap().to_owned();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(loc, s.u(&format!("/tasks/status/{id}")));
    let (code, v) = s.wait_task(&id).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "done");
    assert_eq!(v["os"], IMAGE);
    assert_eq!(v["node"]["node"], "ok1.lab");
    let (_, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(v["pxe"]["os"], "local");

    // multipart with add_sls.
    let form = reqwest::multipart::Form::new()
        .text("node", "ok2.lab")
        .text("os", "sle")
        .text("add_sls", "extra-state");
    let r = s.post_multipart("/node/provision", form).await;
    assert_eq!(r.status(), 202);
    let id2 = r.headers()["taskid"].to_str().unwrap().to_owned();
    assert_eq!(s.wait_task(&id2).await.0, 200);
    let (code, v) = s.get_json(&format!("/tasks/log/{id2}")).await;
    assert_eq!(code, 200);
    assert_eq!(v["TaskID"], id2.as_str());
    let log = v["LogData"].as_str().unwrap();
    assert!(log.contains("Applying salt state [core]"), "{log}");
    assert!(log.contains("Applying salt state [extra-state]"), "{log}");
    assert!(!log.contains("very-secret"));

    // While running: 202 with the original's headers.
    let id3 = s.start_provision("slow1.lab", "sle").await;
    let r = s.get(&format!("/tasks/status/{id3}")).await;
    assert_eq!(r.status(), 202);
    let h = r.headers();
    assert_eq!(h["status"], "not completed");
    assert_eq!(h["taskid"], id3.as_str());
    assert_eq!(h["node"], "slow1.lab");
    assert_eq!(h["os"], "sle");
    assert_eq!(h["endtime"], "-1");
    assert!(h["starttime"].to_str().unwrap().parse::<i64>().unwrap() > 1_700_000_000);
    assert_eq!(h["stopped"], "False");
    assert_eq!(h["location"], s.u(&format!("/tasks/status/{id3}")).as_str());
    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v[&id3]["status"], "not completed");
    assert_eq!(v[&id3]["end_time"], -1);
    assert_eq!(v[&id]["status"], "done");
    assert_eq!(v[&id]["rv"]["status"], "done");
    let (code, v) = s.get_json(&format!("/tasks/log/{id3}")).await;
    assert_eq!(code, 200);
    assert!(
        v["LogData"]
            .as_str()
            .unwrap()
            .contains("Provision node [slow1.lab]")
    );

    // Dismiss: both routes; 404 when nothing runs.
    let r = s
        .post_form("/tasks/node/dismiss", &[("node", "slow1.lab")])
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"stopped_task": id3, "node": "slow1.lab"})
    );
    let (code, v) = s.get_json(&format!("/tasks/status/{id3}")).await;
    assert_eq!(
        (code, v),
        (410, json!({"error": "Stop provisioning thread by request"}))
    );
    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v[&id3]["stopped"], true);
    assert_eq!(
        v[&id3]["rv"]["error"],
        "Stop provisioning thread by request"
    );
    let (_, v) = s.get_json("/node/slow1.lab").await;
    assert_eq!(v["pxe"]["os"], "local", "a dismissed node boots locally");
    let r = s.post_form("/node/dismiss", &[("node", "slow1.lab")]).await;
    assert_eq!(r.status(), 404);
    let id4 = s.start_provision("slow2.lab", "sle").await;
    let form = reqwest::multipart::Form::new().text("node", "slow2.lab");
    let r = s.post_multipart("/node/dismiss", form).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.wait_task(&id4).await.0, 410);

    let (code, v) = s.get_json("/tasks/status/0123").await;
    assert_eq!(
        (code, v),
        (404, json!({"error": "Task \"0123\" is not found"}))
    );
    assert_eq!(s.get_json("/tasks/log/0123").await.0, 404);
}

#[tokio::test]
async fn location_uses_public_url() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &["--public-url", "https://pelagos.example.com:8443/"]);
    let r = s.provision("ok1.lab", "local").await;
    assert_eq!(r.status(), 202);
    let id = r.headers()["taskid"].to_str().unwrap().to_owned();
    assert_eq!(
        r.headers()["location"],
        format!("https://pelagos.example.com:8443/tasks/status/{id}").as_str()
    );
    assert_eq!(s.wait_task(&id).await.0, 200);
}

/// What the server answers to an `extra_sls`/`add_sls` holding `bad`.
fn invalid_sls(field: &str, bad: &str) -> serde_json::Value {
    json!({ "error": format!(
        "invalid salt state name in form field `{field}`: {bad:?} \
         (allowed: letters, digits, _ . -, not starting with - or .)"
    ) })
}

#[tokio::test]
async fn hostile_extra_sls_answers_400_and_creates_nothing() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);
    // A record to compare against.
    assert_eq!(s.get_json("/node/bootrecord/ok1.lab/sle").await.0, 200);
    let pxe_file = fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01");
    let before = read(&pxe_file);
    assert!(before.starts_with(&format!("# os={IMAGE}\n")), "{before}");

    // (value sent, the word the error names)
    let hostile = [
        ("--out-file=/root/.bashrc", "--out-file=/root/.bashrc"),
        ("-r", "-r"),
        ("-c /tmp/x", "-c"),
        ("--roster-file x", "--roster-file"),
        (r#"pillar={"a":1}"#, r#"pillar={"a":1}"#),
        ("core --out-file=/x", "--out-file=/x"),
        ("../x", "../x"),
        (".hidden", ".hidden"),
        ("a/b", "a/b"),
    ];
    for (value, bad) in hostile {
        for field in ["extra_sls", "add_sls"] {
            let r = s
                .post_form(
                    "/node/provision",
                    &[("node", "ok1.lab"), ("os", "sle"), (field, value)],
                )
                .await;
            assert_eq!(r.status(), 400, "urlencoded {field}={value}");
            assert_eq!(
                r.json::<serde_json::Value>().await.unwrap(),
                invalid_sls(field, bad),
                "urlencoded {field}={value}"
            );
            let form = reqwest::multipart::Form::new()
                .text("node", "ok1.lab")
                .text("os", "sle")
                .text(field, value);
            let r = s.post_multipart("/node/provision", form).await;
            assert_eq!(r.status(), 400, "multipart {field}={value}");
            assert_eq!(
                r.json::<serde_json::Value>().await.unwrap(),
                invalid_sls(field, bad),
                "multipart {field}={value}"
            );
        }
    }
    // Too many states.
    let many = (0..65)
        .map(|i| format!("s{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let r = s
        .post_form(
            "/node/provision",
            &[("node", "ok1.lab"), ("os", "sle"), ("add_sls", &many)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "too many salt states in form field `add_sls`: 65 (at most 64)"})
    );

    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v, json!({}), "no task was created");
    assert_eq!(read(&pxe_file), before, "the boot record is unchanged");
    let (_, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(v["pxe"]["os"], IMAGE);

    // Good names are still accepted, through either field.
    let r = s
        .post_form(
            "/node/provision",
            &[
                ("node", "ok1.lab"),
                ("os", "sle"),
                ("extra_sls", "ceph.osd a_b-c"),
            ],
        )
        .await;
    assert_eq!(r.status(), 202);
    let id = r.headers()["taskid"].to_str().unwrap().to_owned();
    assert_eq!(s.wait_task(&id).await.0, 200);
    let (_, v) = s.get_json(&format!("/tasks/log/{id}")).await;
    let log = v["LogData"].as_str().unwrap();
    assert!(log.contains("Applying salt state [ceph.osd]"), "{log}");
    assert!(log.contains("Applying salt state [a_b-c]"), "{log}");
}
