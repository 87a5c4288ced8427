//! An OS whose image dir holds nothing a node can install is refused in
//! production mode (404 naming the dir and the missing files) before a task
//! exists, a record is written or the BMC is called; the simulated lab
//! still provisions bare dirs.

use crate::{Fixture, IMAGE, Server};
use serde_json::json;
use std::process::Command;

/// The server on the fixture's lab in production mode. The BMC tool does not
/// exist: a request that got as far as the BMC would fail its task, and
/// these must not get a task at all.
fn production(fx: &Fixture) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pelagos-server"));
    cmd.arg("--config")
        .arg(fx.path("lab.json"))
        .arg("--tftpdir")
        .arg(fx.path("tftp"))
        .arg("--state-dir")
        .arg(fx.path("state"))
        .arg("--ipmitool")
        .arg(fx.path("no-such-ipmitool"));
    Server::spawn(cmd, None)
}

fn refusal(fx: &Fixture, os: &str) -> serde_json::Value {
    json!({"error": format!(
        "os image [{os}] in dir [{}] cannot be installed: missing kernel pxeboot.kernel, \
         initrd pxeboot.initrd.xz",
        fx.path("tftp").join(IMAGE).display()
    )})
}

#[tokio::test]
async fn production_refuses_an_image_dir_without_boot_files() {
    let fx = Fixture::new();
    // The fixture's image dir has a disk image but no kernel nor initrd.
    let s = production(&fx);
    let record = fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01");

    for os in ["sle", IMAGE] {
        let r = s.provision("ok1.lab", os).await;
        assert_eq!(r.status(), 404, "provision {os}");
        assert!(r.headers().get("taskid").is_none());
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap(),
            refusal(&fx, os)
        );
        let (code, v) = s.get_json(&format!("/check_image/{os}")).await;
        assert_eq!((code, v), (404, refusal(&fx, os)), "check_image {os}");
        // The boot-record route resolves the same way.
        let (code, v) = s.get_json(&format!("/node/bootrecord/ok1.lab/{os}")).await;
        assert_eq!((code, v), (404, refusal(&fx, os)), "bootrecord {os}");
    }
    assert!(!record.exists(), "a record was written");
    let (_, v) = s.get_json("/tasks/statuses").await;
    assert_eq!(v, json!({}), "a task exists");
    let (_, v) = s.get_json("/node/ok1.lab").await;
    assert_eq!(
        v["pxe"]["os"],
        "Default config is used: pxelinux.cfg/default"
    );

    // Unknown names keep the original's answer; local and the maintenance
    // image are not image dirs.
    let (code, v) = s.get_json("/check_image/nosuch").await;
    assert_eq!(code, 404);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("No os image [nosuch] found in dir ["),
        "{v}"
    );
    for os in ["local", "maintenance_image"] {
        let (code, v) = s.get_json(&format!("/check_image/{os}")).await;
        assert_eq!((code, v), (200, json!({"os": os})));
    }

    // With its boot files the same dir is an image.
    let dir = fx.path("tftp").join(IMAGE);
    std::fs::write(dir.join("pxeboot.kernel"), "k").unwrap();
    std::fs::write(dir.join("pxeboot.initrd.xz"), "i").unwrap();
    let (code, v) = s.get_json("/check_image/sle").await;
    assert_eq!((code, v), (200, json!({"os": IMAGE})));
}

#[tokio::test]
async fn simulation_still_provisions_a_bare_dir() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.path("tftp/bare-1")).unwrap();
    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json("/check_image/bare-1").await;
    assert_eq!((code, v), (200, json!({"os": "bare-1"})));
    let id = s.start_provision("ok1.lab", "bare-1").await;
    let (code, v) = s.wait_task(&id).await;
    assert_eq!((code, &v["status"]), (200, &json!("done")), "{v}");
}
