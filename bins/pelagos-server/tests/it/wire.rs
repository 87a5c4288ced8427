//! The compatible answers byte for byte: status line, headers (but `date`)
//! and body of every route teuthology's client reads, in one snapshot
//! (`snapshots/it__wire__compatible_answers.snap`). Task rows written by an
//! earlier server are served exactly as stored.

use crate::{Fixture, Server};
use pelagos_provision::{SqliteStore, TaskEnd, TaskResult, TaskRow, TaskStore, now_secs};
use std::fmt::Write;

/// One answer as a client sees it.
async fn show(doc: &mut String, what: &str, r: reqwest::Response) {
    let _ = writeln!(doc, "== {what}\n{}", r.status().as_u16());
    for (name, value) in r.headers() {
        if name != "date" {
            let _ = writeln!(doc, "{name}: {}", value.to_str().unwrap());
        }
    }
    let body = r.bytes().await.unwrap();
    let _ = writeln!(doc, "\n{}\n", String::from_utf8_lossy(&body));
}

fn row(id: char, node: &str, start: i64, result: Option<(u16, &str)>) -> TaskRow {
    TaskRow {
        id: id.to_string().repeat(32),
        node: node.into(),
        os: "sle".into(),
        start_time: start,
        end: result.map(|(code, body)| TaskEnd {
            time: start + 10,
            stopped: code == 410,
            result: TaskResult {
                code,
                body: bytes::Bytes::from(body.to_owned()),
            },
        }),
    }
}

/// Task rows as an earlier server stored them: a success, a dismissal, a
/// body in another layout (spaces, key order) and a task that was running.
async fn old_rows(fx: &Fixture) {
    let store = SqliteStore::open(&fx.path("state/pelagos.db"))
        .await
        .unwrap();
    let t = now_secs() - 600;
    let rows = [
        row(
            'a',
            "ok1.lab",
            t,
            Some((
                200,
                r#"{"status":"done","node":{"node":"ok1.lab","mac":"aa:bb:cc:dd:ee:01","ip":"10.0.0.1","bmc_ip":"10.1.0.1","comment":"first"},"os":"sle-15.6-1.0"}"#,
            )),
        ),
        row(
            'b',
            "slow1.lab",
            t + 100,
            Some((410, r#"{"error":"Stop provisioning thread by request"}"#)),
        ),
        row(
            'c',
            "ok2.lab",
            t + 200,
            Some((500, r#"{ "os": "x", "error" : "old layout" }"#)),
        ),
        row('d', "slow2.lab", t + 300, None),
    ];
    for r in &rows {
        let mut inserted = r.clone();
        inserted.end = None;
        store.insert(&inserted).await.unwrap();
        if r.end.is_some() {
            store
                .finish(r, &format!("log of {}\nline 2\n", r.node))
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn compatible_answers() {
    let fx = Fixture::new();
    old_rows(&fx).await;
    let s = Server::start(&fx, &[]);
    let mut doc = String::new();
    let mut live: Vec<String> = Vec::new();

    for path in [
        "/",
        "/version",
        "/nodes",
        "/node/ok1.lab",
        "/node/nope.lab",
        "/check_image/sle",
        "/check_image/local",
        "/check_image/nosuch",
        "/check_image/..%2Fetc",
        "/tasks/statuses",
        &format!("/tasks/status/{}", "a".repeat(32)),
        &format!("/tasks/status/{}", "b".repeat(32)),
        &format!("/tasks/status/{}", "c".repeat(32)),
        &format!("/tasks/status/{}", "d".repeat(32)),
        &format!("/tasks/log/{}", "a".repeat(32)),
        &format!("/tasks/log/{}", "d".repeat(32)),
        "/tasks/status/0123",
        "/tasks/log/0123",
        "/node/bootrecord/ok1.lab/sle",
        "/nodes",
        "/node/ok1.lab",
        "/node/bootrecord/ok1.lab/nosuch",
        "/node/bootrecord/nope/sle",
        "/node/rmbootrecord/ok1.lab",
        "/node/rmbootrecord/nope",
        "/node/ok1.lab",
        "/no/such/route",
    ] {
        show(&mut doc, &format!("GET {path}"), s.get(path).await).await;
    }
    let r = s.http.post(s.u("/nodes")).send().await.unwrap();
    show(&mut doc, "POST /nodes", r).await;

    for form in [
        &[("node", "ok1.lab")][..],
        &[("node", "nope.lab"), ("os", "sle")],
        &[("node", "ok1.lab"), ("os", "nosuch")],
        &[("node", "ok1.lab"), ("os", "sle"), ("add_sls", "-r")],
        &[("node", "ok1.lab"), ("os", "sle"), ("node", "ok2.lab")],
    ] {
        let r = s.post_form("/node/provision", form).await;
        show(&mut doc, &format!("POST /node/provision {form:?}"), r).await;
    }

    // A running task: 202 with the original's headers.
    let r = s.provision("slow1.lab", "sle").await;
    live.push(r.headers()["taskid"].to_str().unwrap().to_owned());
    show(&mut doc, "POST /node/provision slow1.lab sle", r).await;
    let running = live[0].clone();
    let r = s.get(&format!("/tasks/status/{running}")).await;
    show(&mut doc, "GET /tasks/status/<running>", r).await;
    show(
        &mut doc,
        "GET /tasks/statuses",
        s.get("/tasks/statuses").await,
    )
    .await;
    let r = s.get("/node/bootrecord/slow1.lab/local").await;
    show(&mut doc, "GET /node/bootrecord/slow1.lab/local", r).await;
    let r = s.get("/node/rmbootrecord/slow1.lab").await;
    show(&mut doc, "GET /node/rmbootrecord/slow1.lab", r).await;

    let r = s
        .post_form("/tasks/node/dismiss", &[("node", "slow1.lab")])
        .await;
    show(&mut doc, "POST /tasks/node/dismiss slow1.lab", r).await;
    assert_eq!(s.wait_task(&running).await.0, 410);
    let r = s.get(&format!("/tasks/status/{running}")).await;
    show(&mut doc, "GET /tasks/status/<running> dismissed", r).await;
    let r = s.post_form("/node/dismiss", &[("node", "slow1.lab")]).await;
    show(&mut doc, "POST /node/dismiss slow1.lab", r).await;
    let r = s.post_form("/node/dismiss", &[]).await;
    show(&mut doc, "POST /node/dismiss (no node)", r).await;
    show(
        &mut doc,
        "GET /tasks/statuses",
        s.get("/tasks/statuses").await,
    )
    .await;

    // A task that succeeds; multipart.
    let form = reqwest::multipart::Form::new()
        .text("node", "ok2.lab")
        .text("os", "sle");
    let r = s.post_multipart("/node/provision", form).await;
    live.push(r.headers()["taskid"].to_str().unwrap().to_owned());
    show(&mut doc, "POST /node/provision ok2.lab sle (multipart)", r).await;
    let done = live[1].clone();
    assert_eq!(s.wait_task(&done).await.0, 200);
    let r = s.get(&format!("/tasks/status/{done}")).await;
    show(&mut doc, "GET /tasks/status/<done>", r).await;
    let r = s
        .post_multipart(
            "/node/dismiss",
            reqwest::multipart::Form::new().text("node", "ok2.lab"),
        )
        .await;
    show(&mut doc, "POST /node/dismiss ok2.lab (multipart)", r).await;

    // Stable names for what changes from run to run.
    let mut doc = doc
        .replace(&s.url, "http://<server>")
        .replace(&fx.dir.path().display().to_string(), "<dir>")
        .replace(
            &format!("\"version\":\"{}\"", env!("CARGO_PKG_VERSION")),
            "\"version\":\"<version>\"",
        );
    for (i, id) in live.iter().enumerate() {
        doc = doc.replace(id, &format!("<task{i}>"));
    }
    insta::with_settings!({
        filters => vec![
            (r"\b1[0-9]{9}\b", "<time>"),
            (r"content-length: [0-9]+\n", "content-length: <n>\n"),
        ],
    }, {
        insta::assert_snapshot!(doc);
    });
}
