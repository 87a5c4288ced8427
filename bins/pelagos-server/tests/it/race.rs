//! Per-node exclusivity under load.

use crate::{Fixture, Server};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_rapid_reprovisions_leave_one_done() {
    let fx = Fixture::new();
    let s = Arc::new(Server::start(&fx, &[]));
    let mut posts = Vec::new();
    for _ in 0..100 {
        let s = s.clone();
        posts.push(tokio::spawn(async move {
            s.start_provision("ok1.lab", "sle").await
        }));
    }
    let mut ids = Vec::new();
    for p in posts {
        ids.push(p.await.unwrap());
    }
    let mut done = 0;
    let mut gone = 0;
    for id in &ids {
        match s.wait_task(id).await.0 {
            200 => done += 1,
            410 => gone += 1,
            other => panic!("task {id} ended with {other}"),
        }
    }
    assert_eq!((done, gone), (1, 99));
    let (_, v) = s.get_json("/tasks/statuses").await;
    let stopped = v
        .as_object()
        .unwrap()
        .values()
        .filter(|t| t["stopped"] == true)
        .count();
    assert_eq!(stopped, 99);
    let (_, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(v["pxe"]["os"], "local");
}
