//! add-image end to end: the real binary on synthetic kiwi output.

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use pelagos_testkit::kiwi::{BASE, build_dir, install_tar, raw_disk};

fn add_image(root: &Path) -> Command {
    let mut c = Command::cargo_bin("add-image").unwrap();
    c.arg("--tftp-root").arg(root).env("NO_COLOR", "1");
    c
}

fn visible(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn install_list_remove_prune() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let t = tftp.path();
    for (i, v) in ["15.5.0", "15.6.0", "15.6.1"].iter().enumerate() {
        let d = src.path().join(v);
        build_dir(
            &d,
            &format!("opensuse-leap.x86_64-{v}"),
            &raw_disk(4096, i as u8),
        );
        // --tftp-root after the subcommand works too (global flag).
        Command::cargo_bin("add-image")
            .unwrap()
            .args(["install", "-q"])
            .arg(&d)
            .arg("--tftp-root")
            .arg(t)
            .assert()
            .success()
            .stdout(contains(format!("installed opensuse-leap-{v}")));
    }
    add_image(t).args(["list"]).assert().success().stdout(
        contains("opensuse-leap")
            .and(contains("15.6.1"))
            .and(contains("*")),
    );
    let out = add_image(t).args(["list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let current: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["current"] == true)
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(current, ["opensuse-leap-15.5.0"]);

    add_image(t)
        .args(["remove", "opensuse-leap-15.5.0"])
        .assert()
        .failure()
        .stderr(contains("current version").and(contains("--force")));
    add_image(t)
        .args(["set-current", "opensuse-leap-15.6.1"])
        .assert()
        .success();
    add_image(t)
        .args(["prune", "--keep", "1"])
        .assert()
        .success()
        .stdout(
            contains("removed opensuse-leap-15.5.0").and(contains("removed opensuse-leap-15.6.0")),
        );
    assert_eq!(visible(t), ["opensuse-leap", "opensuse-leap-15.6.1"]);
    add_image(t)
        .args(["remove", "../etc"])
        .assert()
        .failure()
        .stderr(contains("invalid os name [../etc]"));
}

#[test]
fn corrupted_checksum_refused() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let d = src.path().join("b");
    build_dir(&d, BASE, &raw_disk(8192, 1));
    std::fs::write(
        d.join(format!("{BASE}.md5")),
        "0123456789abcdef0123456789abcdef 16 512\n",
    )
    .unwrap();
    add_image(tftp.path())
        .args(["install", "-q"])
        .arg(&d)
        .assert()
        .failure()
        .stderr(contains("checksum mismatch").and(contains("0123456789abcdef0123456789abcdef")));
    assert!(std::fs::read_dir(tftp.path()).unwrap().next().is_none());
}

/// The `os` of an installed image's manifest (`Null` when it has none).
fn manifest_os(root: &Path, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root.join(id).join("image.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m.get("os").cloned().unwrap_or(serde_json::Value::Null)
}

#[test]
fn os_identity_comes_from_kiwis_image_root_or_the_flags() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let t = tftp.path();

    // A kiwi target dir: its image root's /etc/os-release is an absolute
    // symlink, which must resolve inside the root, not on this host.
    let d = src.path().join("kiwi");
    build_dir(&d, BASE, &raw_disk(4096, 1));
    let image_root = d.join("build/image-root");
    std::fs::create_dir_all(image_root.join("usr/lib")).unwrap();
    std::fs::create_dir_all(image_root.join("etc")).unwrap();
    std::fs::write(
        image_root.join("usr/lib/os-release"),
        "# kiwi built\nNAME=\"Alpha Linux\"\nID=alpha\nVERSION_ID=\"1.0\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/lib/os-release", image_root.join("etc/os-release")).unwrap();
    std::fs::write(image_root.join("etc/ImageID"), "e2e-alpha-1\n").unwrap();
    add_image(t)
        .args(["install", "-q"])
        .arg(&d)
        .assert()
        .success()
        .stdout(contains("os: ID=alpha VERSION_ID=1.0 image=e2e-alpha-1"));
    assert_eq!(
        manifest_os(t, "opensuse-leap-15.6.1"),
        serde_json::json!({"id": "alpha", "version_id": "1.0", "image_id": "e2e-alpha-1"})
    );

    // The flags override the image root.
    let other = src.path().join("other-os-release");
    std::fs::write(&other, "ID='beta'\nVERSION_ID=2\n").unwrap();
    add_image(t)
        .args(["install", "-q", "--version", "2"])
        .arg(&d)
        .arg("--os-release")
        .arg(&other)
        .args(["--image-id", "beta-image"])
        .assert()
        .success();
    assert_eq!(
        manifest_os(t, "opensuse-leap-2"),
        serde_json::json!({"id": "beta", "version_id": "2", "image_id": "beta-image"})
    );

    // An install tar carries no image root: no identity unless given.
    let tars = src.path().join("tars");
    std::fs::create_dir(&tars).unwrap();
    let tar = install_tar(&tars, BASE, &raw_disk(4096, 2));
    add_image(t)
        .args(["install", "-q", "--version", "3"])
        .arg(&tar)
        .assert()
        .success()
        .stdout(contains("os: unknown"));
    assert_eq!(manifest_os(t, "opensuse-leap-3"), serde_json::Value::Null);
    add_image(t)
        .args(["install", "-q", "--version", "4", "--os-release"])
        .arg(&other)
        .arg(&tar)
        .assert()
        .success();
    assert_eq!(
        manifest_os(t, "opensuse-leap-4"),
        serde_json::json!({"id": "beta", "version_id": "2", "image_id": ""})
    );
    // An image id alone says nothing of the OS.
    add_image(t)
        .args(["install", "-q", "--version", "5", "--image-id", "x"])
        .arg(&tar)
        .assert()
        .failure()
        .stderr(contains("pass --os-release"));

    // Values that cannot be recorded are refused, naming field and value,
    // before anything is installed.
    add_image(t)
        .args([
            "install",
            "-q",
            "--version",
            "6",
            "--image-id",
            "bad\u{1b}[31m",
        ])
        .arg(&d)
        .assert()
        .failure()
        .stderr(contains("image id [bad\\u{1b}[31m]").and(contains("control character")));
    std::fs::write(
        &other,
        format!("ID=beta\nVERSION_ID={}\n", "9".repeat(1000)),
    )
    .unwrap();
    add_image(t)
        .args(["install", "-q", "--version", "7", "--os-release"])
        .arg(&other)
        .arg(&tar)
        .assert()
        .failure()
        .stderr(contains("VERSION_ID [999").and(contains("longer than 256 bytes")));
    assert_eq!(
        visible(t),
        [
            "opensuse-leap",
            "opensuse-leap-15.6.1",
            "opensuse-leap-2",
            "opensuse-leap-3",
            "opensuse-leap-4"
        ]
    );
}

/// Kills the process that runs a child on drop.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_install_leaves_catalog_as_it_was() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let t = tftp.path();
    let first = src.path().join("first");
    build_dir(&first, "opensuse-leap.x86_64-15.5.0", &raw_disk(2048, 1));
    add_image(t)
        .args(["install", "-q"])
        .arg(&first)
        .assert()
        .success();
    let before = visible(t);

    // The install tar arrives through a pipe, so the install is caught
    // mid-copy deterministically: half the tar written, then SIGKILL.
    let files = src.path().join("files");
    build_dir(&files, BASE, &raw_disk(256 * 1024, 2));
    let mut b = tar::Builder::new(Vec::new());
    for n in [format!("{BASE}.xz"), format!("{BASE}.md5")] {
        b.append_path_with_name(files.join(&n), &n).unwrap();
    }
    let tar_bytes = b.into_inner().unwrap();
    let fifo = src.path().join(format!("{BASE}.install.tar"));
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo failed");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("add-image"))
        .arg("--tftp-root")
        .arg(t)
        .args(["install", "-q", "--set-current"])
        .arg(&fifo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Kill(child);
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&tar_bytes[..tar_bytes.len() / 2]).unwrap();
    w.flush().unwrap();
    // Wait until the partial image is in the staging dir.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let partial = std::fs::read_dir(t).unwrap().flatten().any(|e| {
            e.file_name().to_string_lossy().starts_with(".add-image.")
                && e.path().join("src").join(format!("{BASE}.xz")).exists()
        });
        if partial {
            break;
        }
        assert!(Instant::now() < deadline, "install never started copying");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    drop(w);
    assert_eq!(visible(t), before);
    assert_eq!(
        std::fs::read_link(t.join("opensuse-leap"))
            .unwrap()
            .to_str(),
        Some("opensuse-leap-15.5.0")
    );
    assert_eq!(
        std::fs::read_dir(t).unwrap().count(),
        before.len() + 1,
        "staging dir kept"
    );
    add_image(t)
        .args(["clean"])
        .assert()
        .success()
        .stdout(contains("removed 1 staging dir"));
    assert_eq!(std::fs::read_dir(t).unwrap().count(), before.len());
}
