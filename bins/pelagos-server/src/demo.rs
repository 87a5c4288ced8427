//! `--demo`: a ready-to-try lab (examples/lab.json, bundled into the binary)
//! with its own TFTP root, a demo OS image and fast simulated hardware.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

const LAB: &str = include_str!("../../../examples/lab.json");
/// The demo image dir and the symlink naming its current version.
pub const IMAGE: &str = "opensuse-leap-15.6.0";
pub const OS: &str = "opensuse-leap";

pub struct Demo {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tftp_dir: PathBuf,
    pub state_dir: PathBuf,
    pub first_node: String,
}

/// Lay out `<dir>/{lab.json,tftp,state}` (dir: `state_dir` or ./pelagos-demo);
/// existing state is kept so the demo survives restarts.
pub fn prepare(dir: Option<PathBuf>) -> Result<Demo> {
    let dir = dir.unwrap_or_else(|| PathBuf::from("pelagos-demo"));
    let config = dir.join("lab.json");
    let tftp_dir = dir.join("tftp");
    let state_dir = dir.join("state");
    let image = tftp_dir.join(IMAGE);
    std::fs::create_dir_all(&image)
        .with_context(|| format!("cannot create demo dir {}", image.display()))?;
    pelagos_provision::store::create_private_dir(&state_dir)
        .with_context(|| format!("cannot create demo dir {}", state_dir.display()))?;
    write_new(&config, LAB.as_bytes())?;
    write_new(&image.join("pxeboot.kernel"), b"demo kernel\n")?;
    write_new(&image.join("pxeboot.initrd.xz"), b"demo initrd\n")?;
    write_new(&image.join(format!("{IMAGE}.xz")), b"demo disk image\n")?;
    write_manifest(&image)?;
    let link = tftp_dir.join(OS);
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(IMAGE, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
    }
    let lab = pelagos_config::LabConfig::parse(LAB).context("bundled demo lab")?;
    let first_node = lab
        .nodes
        .first()
        .map(|n| n.node.clone())
        .unwrap_or_default();
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    Ok(Demo {
        config: dir.join("lab.json"),
        tftp_dir: dir.join("tftp"),
        state_dir: dir.join("state"),
        dir,
        first_node,
    })
}

/// The demo image's `image.json`, as add-image would write it, with the OS
/// identity the simulated node reports once it runs the image (so the demo's
/// provisions verify the OS like a real lab's).
fn write_manifest(image: &Path) -> Result<()> {
    use pelagos_pxe::catalog::{Manifest, ManifestFile};
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    for name in [
        "pxeboot.kernel",
        "pxeboot.initrd.xz",
        &format!("{IMAGE}.xz"),
    ] {
        let data = std::fs::read(image.join(name))
            .with_context(|| format!("cannot read {}", image.join(name).display()))?;
        files.push(ManifestFile {
            name: name.to_owned(),
            size: data.len() as u64,
            sha256: format!("{:x}", Sha256::digest(&data)),
        });
    }
    let manifest = Manifest {
        name: OS.to_owned(),
        version: "15.6.0".to_owned(),
        arch: "x86_64".to_owned(),
        aliases: vec!["opensuse".to_owned()],
        kernel: "pxeboot.kernel".to_owned(),
        initrd: "pxeboot.initrd.xz".to_owned(),
        image: format!("{IMAGE}.xz"),
        image_md5: String::new(),
        kernel_options: String::new(),
        config_bootoptions: String::new(),
        files,
        installed: "2026-01-01T00:00:00Z".to_owned(),
        source: "pelagos-server --demo".to_owned(),
        os: Some(pelagos_pxe::os_release::OsIdentity {
            id: "opensuse-leap".to_owned(),
            version_id: "15.6".to_owned(),
            image_id: format!("{IMAGE}-demo"),
        }),
    };
    write_new(
        &image.join(pelagos_pxe::catalog::MANIFEST),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )
}

fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    if !path.exists() {
        pelagos_config::atomic::write_atomic(path, data)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
pub fn print_usage(url: &str, d: &Demo) {
    let n = &d.first_node;
    println!(
        "\nPelagos demo: a simulated five-node lab in {dir}\n\
         \n  curl {url}/nodes\n\
         \n  curl -i -d node={n} -d os={OS} {url}/node/provision\
         \n  curl -i {url}/tasks/status/<TaskID from the Location header>\
         \n  curl {url}/tasks/log/<TaskID>\
         \n  curl {url}/tasks/statuses\
         \n  curl -d node={n} {url}/tasks/node/dismiss\n\
         \nDashboard (nodes, tasks, consoles; live): {url}/ui\n\
         \nStop with Ctrl-C; state is kept in {state}.",
        dir = d.dir.display(),
        state = d.state_dir.display(),
    );
}
