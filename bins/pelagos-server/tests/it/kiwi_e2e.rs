//! Issue 5 end to end: a kiwi-shaped build dir goes through the real
//! `add-image install`, then pelagos-server resolves it (`check_image`),
//! provisions a node with it, and serves the image its records name.

use crate::images::record_image_url;
use crate::kiwi::{BASE, build_dir, raw_disk};
use crate::{Fixture, LAB, Server, read, until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const ID: &str = "opensuse-leap-15.6.1";

/// The `add-image` binary of this workspace, built into this test's
/// target dir (another package's binary is not built for these tests).
fn add_image_bin() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let profile = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let target_dir = dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", "add-image", "--bin", "add-image"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile != "debug" {
        build.args(["--profile", &profile]);
    }
    let status = build.status().expect("run cargo build -p add-image");
    assert!(status.success(), "cargo build -p add-image failed");
    let bin = dir.join("add-image");
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

#[tokio::test]
async fn kiwi_build_dir_to_served_provision() {
    let fx = Fixture::new();
    // The pxe server on loopback so the records' URLs are fetchable here; a
    // BIOS node and a UEFI one, both booting slowly enough to see the
    // image record before the provision switches it to local.
    let lab = LAB.replace("10.0.0.254", "127.0.0.1").replace(
        r#""nodes": ["#,
        r#""nodes": [
    {"node": "kiwi-bios.lab", "mac": "aa:bb:cc:dd:ee:10", "ip": "10.0.0.10", "sim": {"boot_time": 3}},
    {"node": "kiwi-uefi.lab", "mac": "aa:bb:cc:dd:ee:11", "ip": "10.0.0.11", "uefi": true, "sim": {"boot_time": 3}},"#,
    );
    std::fs::write(fx.path("lab.json"), lab).unwrap();
    let tftp = fx.path("tftp");
    let src = fx.path("kiwi-out");
    build_dir(&src, BASE, &raw_disk(2 * 1024 * 1024 + 512, 0));

    assert_cmd::Command::new(add_image_bin())
        .arg("install")
        .arg(&src)
        .arg("--tftp-root")
        .arg(&tftp)
        .args(["--set-current", "-q"])
        .env("NO_COLOR", "1")
        .assert()
        .success();
    let manifest: Value = serde_json::from_str(&read(&tftp.join(ID).join("image.json"))).unwrap();
    assert_eq!(
        std::fs::read_link(tftp.join("opensuse-leap")).unwrap(),
        Path::new(ID)
    );
    let file = |k: &str| manifest[k].as_str().unwrap().to_owned();
    let (kernel, initrd, image) = (file("kernel"), file("initrd"), file("image"));

    let s = Server::start(&fx, &[]);
    for os in ["opensuse-leap", ID, "opensuse-leap-15.6"] {
        let (code, v) = s.get_json(&format!("/check_image/{os}")).await;
        assert_eq!((code, v), (200, json!({ "os": ID })), "check_image/{os}");
    }

    for (node, mac) in [("kiwi-bios.lab", "10"), ("kiwi-uefi.lab", "11")] {
        let record_path = tftp.join(format!("pxelinux.cfg/01-aa-bb-cc-dd-ee-{mac}"));
        let grub_path = tftp.join(format!("grub/grub.cfg-01-aa-bb-cc-dd-ee-{mac}"));
        let id = s.start_provision(node, "opensuse-leap").await;
        // The record as the node's firmware reads it while it boots.
        let mut record = String::new();
        let mut grub = String::new();
        until(&format!("{node}'s image record"), async || {
            record = read(&record_path);
            grub = read(&grub_path);
            record.starts_with(&format!("# os={ID}\n"))
        })
        .await;
        let (code, v) = s.wait_task(&id).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["os"], ID);
        assert_eq!(v["node"]["node"], node);

        assert!(
            record.contains(&format!("\n  KERNEL {ID}/{kernel}\n")),
            "{record}"
        );
        assert!(
            record.contains(&format!("\n  INITRD {ID}/{initrd}\n")),
            "{record}"
        );
        assert!(
            record.contains(" splash=silent"),
            "kiwi's own options: {record}"
        );
        let url = record_image_url(&record);
        assert_eq!(url, format!("{}/images/{ID}/{image}", s.url));
        if node == "kiwi-uefi.lab" {
            assert!(grub.starts_with(&format!("# os={ID}\n")), "{grub}");
            assert!(
                grub.contains(&format!("linux (tftp)/{ID}/{kernel} ")),
                "{grub}"
            );
            assert!(
                grub.contains(&format!("initrd (tftp)/{ID}/{initrd}\n")),
                "{grub}"
            );
            assert_eq!(record_image_url(&grub), url);
        }
        // What kiwi's install initrd downloads is what kiwi built.
        let r = s.http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let served = r.bytes().await.unwrap();
        assert!(
            served == std::fs::read(src.join(format!("{BASE}.xz"))).unwrap(),
            "served image differs from kiwi's"
        );
        // Kernel and initrd are where the records say (TFTP root relative)
        // and are kiwi's PXE kernel and install initrd.
        assert_eq!(
            std::fs::read(tftp.join(ID).join(&kernel)).unwrap(),
            std::fs::read(src.join(format!("pxeboot.{BASE}.kernel"))).unwrap()
        );
        assert_eq!(
            std::fs::read(tftp.join(ID).join(&initrd)).unwrap(),
            std::fs::read(src.join(format!("pxeboot.{BASE}.initrd.xz"))).unwrap()
        );
    }
}
