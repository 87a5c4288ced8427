//! The e2e lab on disk: its lab config, the files make-cfgs generates from
//! it, the TFTP root (boot loaders, the lab menus of states.sample, images
//! installed with add-image), dnsmasq's config dir and salt's config.

use super::net::{BRIDGE, SERVER_IP};
use anyhow::{Context, Result, bail, ensure};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const DOMAIN: &str = "e2e.lab";
/// The salt state every provision of an image applies (lab `sls_list`).
pub const STATE: &str = "e2e";
/// Where the state leaves its mark on the node.
pub const SALT_MARK: &str = "/root/pelagos-e2e-salted";

/// How a VM boots from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// SeaBIOS, the e1000's iPXE ROM, which chains pxelinux (no iPXE record
    /// for BIOS nodes): pxelinux reads `pxelinux.cfg/01-<mac>`.
    Bios,
    /// OVMF's own PXE stack on a virtio NIC without ROM: GRUB's network
    /// image reads `grub/grub.cfg-01-<mac>`.
    Uefi,
}

/// One node of the e2e lab.
#[derive(Debug, Clone)]
pub struct NodeDef {
    pub short: &'static str,
    pub mac: &'static str,
    pub ip: &'static str,
    pub bmc_ip: &'static str,
    pub bmc_port: u16,
    pub boot: Boot,
    pub tap: &'static str,
}

impl NodeDef {
    pub fn fqdn(&self) -> String {
        format!("{}.{DOMAIN}", self.short)
    }
}

pub fn nodes() -> Vec<NodeDef> {
    vec![
        NodeDef {
            short: "bios1",
            mac: "52:54:00:e2:00:01",
            ip: "10.77.0.11",
            bmc_ip: "127.0.0.1",
            bmc_port: 6231,
            boot: Boot::Bios,
            tap: "tap-bios1",
        },
        NodeDef {
            short: "uefi1",
            mac: "52:54:00:e2:00:02",
            ip: "10.77.0.12",
            bmc_ip: "127.0.0.2",
            bmc_port: 6232,
            boot: Boot::Uefi,
            tap: "tap-uefi1",
        },
    ]
}

/// The root password of the e2e images and the lab's `target_node_password`.
pub const NODE_PASSWORD: &str = "Ne2e-r00t-7Hq2x";

/// Passwords of the run: distinctive, so that a leak is found by a plain
/// substring search; at most 20 bytes (the IPMI v2 limit).
pub struct Secrets {
    pub bmc: String,
    pub node: String,
}

impl Secrets {
    pub fn new() -> Secrets {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Secrets {
            bmc: format!("Be2e-{nanos:08x}"),
            // The images' root password, as a lab's kiwi images carry one:
            // fixed, so that image builds can be cached.
            node: NODE_PASSWORD.to_owned(),
        }
    }
}

/// The paths of the lab in the run's work dir.
pub struct Paths {
    pub work: PathBuf,
}

impl Paths {
    pub fn lab_json(&self) -> PathBuf {
        self.work.join("lab.json")
    }
    pub fn tftp(&self) -> PathBuf {
        self.work.join("tftp")
    }
    pub fn conman_logs(&self) -> PathBuf {
        self.work.join("conman/log")
    }
    pub fn console_socket(&self, short: &str) -> PathBuf {
        self.work.join("conman").join(format!("{short}.sock"))
    }
    pub fn console_log(&self, short: &str) -> PathBuf {
        self.conman_logs().join(format!("console.{short}"))
    }
    pub fn generated(&self) -> PathBuf {
        self.work.join("generated")
    }
    pub fn dnsmasq_dir(&self) -> PathBuf {
        self.work.join("dnsmasq")
    }
    pub fn salt_dir(&self) -> PathBuf {
        self.work.join("salt")
    }
    pub fn builds(&self) -> PathBuf {
        self.work.join("builds")
    }
}

/// Timing of the e2e lab: the original's structure, bounded for VMs under
/// TCG (a kernel and an installer that may be quiet for a few seconds).
pub struct LabTiming {
    pub conman_line_max_age: u64,
    pub max_cold_restart: u64,
}

/// Write the lab config.
pub fn write_lab(p: &Paths, secrets: &Secrets, t: &LabTiming, server_port: u16) -> Result<()> {
    let nodes: Vec<_> = nodes()
        .iter()
        .map(|n| {
            json!({
                "node": n.fqdn(), "mac": n.mac, "ip": n.ip, "ip_type": "dynamic",
                "bmc_ip": n.bmc_ip, "bmc_port": n.bmc_port,
                "uefi": if n.boot == Boot::Uefi { "yes" } else { "no" },
                "console_dev": format!("unix:{}", p.console_socket(n.short).display()),
                "comment": format!("e2e VM, {:?} boot", n.boot),
            })
        })
        .collect();
    let lab = json!({
        "default_pxe_server": SERVER_IP,
        "domain": DOMAIN,
        "ipmi_user": "admin",
        "ipmi_pass": secrets.bmc,
        "target_node_password": secrets.node,
        "roster_file": p.generated().join("deploy.roster"),
        "salt_cfg_dir": p.salt_dir(),
        "sls_list": STATE,
        "conman_log_dir": p.conman_logs(),
        "maintenance_image_kernel": "maint.kernel",
        "maintenance_image_initrd": "maint.initrd.xz",
        "wait_node_ready_timeout": 300,
        "hardware_start_delay": 60,
        "conman_line_max_age": t.conman_line_max_age,
        "max_cold_restart": t.max_cold_restart,
        "cold_restart_delay": 2,
        "ssh_probe_interval": 1,
        "ssh_probe_timeout": 3,
        "ipmi_timeout": 5,
        "ipmi_retries": 2,
        "salt_timeout": 300,
        "pxe": {
            // The VM's serial port is ttyS0; the rest as the defaults.
            "console_opts": "console=ttyS0,115200",
            "bios_opts": "biosdevname=0 net.ifnames=0",
            "debug_opts": "",
        },
        "nodes": nodes,
    });
    std::fs::write(p.lab_json(), serde_json::to_string_pretty(&lab)?)?;
    let _ = server_port;
    Ok(())
}

/// Run a program to completion, failing with its output.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// make-cfgs: dnsmasq's `network_nodes.conf`, conman.conf (through the
/// lab template mechanism, with private pid and log files) and the roster.
pub fn make_cfgs(p: &Paths, make_cfgs: &Path, root: &Path) -> Result<()> {
    let out_dir = p.generated();
    std::fs::create_dir_all(out_dir.join("states/etc"))?;
    let sample = std::fs::read_to_string(root.join("states.sample/etc/conman.conf.tmpl"))?;
    let tmpl = sample
        .replace(
            "SERVER logdir=\"/var/log/conman/\"",
            &format!("SERVER logdir=\"{}/\"", p.conman_logs().display()),
        )
        .replace(
            "SERVER logfile=\"/var/log/conman.log\"",
            &format!(
                "SERVER logfile=\"{}\"",
                p.work.join("conman/conmand.log").display()
            ),
        )
        .replace(
            "SERVER loopback=OFF",
            "SERVER loopback=ON\nSERVER port=7890",
        )
        .replace(
            "SERVER pidfile=\"/run/conman.pid\"",
            &format!(
                "SERVER pidfile=\"{}\"",
                p.work.join("conman/conmand.pid").display()
            ),
        );
    ensure!(
        tmpl != sample,
        "states.sample's conman.conf.tmpl changed shape"
    );
    std::fs::write(out_dir.join("states/etc/conman.conf.tmpl"), tmpl)?;
    run(Command::new(make_cfgs)
        .arg("-c")
        .arg(p.lab_json())
        .arg("-d")
        .arg(&out_dir)
        .args(["--only", "dnsmasq,conman,roster"]))?;
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// The TFTP root as states.sample describes it: pxelinux and its modules,
/// GRUB's network image (grub-mknetdir), the lab menus with their
/// placeholders filled in, the iPXE chain script.
pub fn tftp_root(p: &Paths, root: &Path) -> Result<()> {
    let t = p.tftp();
    std::fs::create_dir_all(t.join("pxelinux.cfg"))?;
    copy(
        Path::new("/usr/lib/PXELINUX/pxelinux.0"),
        &t.join("pxelinux.0"),
    )?;
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32"] {
        copy(
            &Path::new("/usr/lib/syslinux/modules/bios").join(m),
            &t.join(m),
        )?;
    }
    run(Command::new("grub-mknetdir")
        .arg(format!("--net-directory={}", t.display()))
        .arg("--subdir=grub")
        .args(["-d", "/usr/lib/grub/x86_64-efi"]))?;
    let sample = root.join("states.sample/tftp");
    let fill = |s: String| {
        s.replace("@@MAINTENANCE_KERNEL@@", "maint.kernel")
            .replace("@@MAINTENANCE_INITRD@@", "maint.initrd.xz")
            .replace("@@PXE_SERVER@@", SERVER_IP)
    };
    for (from, to) in [
        ("pxelinux.cfg/default.sample", "pxelinux.cfg/default"),
        ("grub/grub.cfg", "grub/grub.cfg"),
        ("ipxe/boot.ipxe", "ipxe/boot.ipxe"),
        ("ipxe/default.ipxe", "ipxe/default.ipxe"),
    ] {
        let text = std::fs::read_to_string(sample.join(from))?;
        std::fs::create_dir_all(t.join(to).parent().context("no parent")?)?;
        std::fs::write(t.join(to), fill(text))?;
    }
    Ok(())
}

/// add-image: install the kiwi build in `build` into the TFTP root.
pub fn add_image(p: &Paths, add_image: &Path, build: &Path) -> Result<()> {
    run(Command::new(add_image)
        .arg("--tftp-root")
        .arg(p.tftp())
        .arg("install")
        .arg(build))?;
    Ok(())
}

/// dnsmasq's config: states.sample's `dnsmasq.d` (network.conf filled in
/// for the e2e bridge, tftp-root pointed at the run's root), the
/// `network_nodes.conf` make-cfgs wrote, and the run's own settings (pid,
/// lease and log files; IPv6 router advertisements so iPXE does not wait
/// for IPv6). Checked with `dnsmasq --test`. The main config file.
pub fn dnsmasq_conf(p: &Paths, root: &Path) -> Result<PathBuf> {
    let d = p.dnsmasq_dir();
    let conf_d = d.join("dnsmasq.d");
    std::fs::create_dir_all(&conf_d)?;
    let sample = root.join("states.sample/etc/dnsmasq/dnsmasq.d");
    for f in ["main.conf", "pxe.conf"] {
        copy(&sample.join(f), &conf_d.join(f))?;
    }
    let tftp = std::fs::read_to_string(sample.join("tftp.conf"))?.replace(
        "tftp-root=/srv/tftpboot",
        &format!("tftp-root={}", p.tftp().display()),
    );
    std::fs::write(conf_d.join("tftp.conf"), tftp)?;
    let network = std::fs::read_to_string(sample.join("network.conf"))?
        .replace("<management interface, e.g. br0>", BRIDGE)
        .replace("<provisioning host's management address>", SERVER_IP)
        .replace("<lab domain, as \"domain\" in the lab config>", DOMAIN)
        .replace("<management network address>", "10.77.0.0")
        .replace("<default router of the management network>", SERVER_IP)
        .replace("addn-hosts=/etc/dnsmasq.d/hosts", "");
    ensure!(
        !network
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains('<')),
        "states.sample's network.conf has a placeholder the e2e does not fill: {network}"
    );
    std::fs::write(conf_d.join("network.conf"), network)?;
    copy(
        &p.generated()
            .join("states/etc/dnsmasq/dnsmasq.d/network_nodes.conf"),
        &conf_d.join("network_nodes.conf"),
    )?;
    std::fs::write(
        conf_d.join("e2e.conf"),
        format!(
            "# The run's own files; root reads the TFTP root in the run's 0700 dir.\n\
             user=root\n\
             pid-file={pid}\n\
             dhcp-leasefile={leases}\n\
             log-facility={log}\n\
             # iPXE waits ~15 s for IPv6 without router advertisements.\n\
             enable-ra\n\
             dhcp-range=::,constructor:{BRIDGE},ra-only\n",
            pid = d.join("dnsmasq.pid").display(),
            leases = d.join("dnsmasq.leases").display(),
            log = d.join("dnsmasq.log").display(),
        ),
    )?;
    let main = d.join("dnsmasq.conf");
    std::fs::write(&main, format!("conf-dir={},*.conf\n", conf_d.display()))?;
    let out = run(Command::new("dnsmasq").arg("--test").arg("-C").arg(&main))
        .context("dnsmasq --test on the generated config")?;
    let _ = out;
    Ok(main)
}

/// salt-ssh's config dir (the lab's `salt_cfg_dir`): a master file with
/// private root, cache and pki dirs, and the state the provisions apply.
pub fn salt_config(p: &Paths) -> Result<()> {
    let s = p.salt_dir();
    let states = s.join("states");
    std::fs::create_dir_all(&states)?;
    std::fs::write(
        s.join("master"),
        format!(
            "root_dir: {root}\nfile_roots:\n  base:\n    - {states}\ncachedir: {root}/cache\n\
             pki_dir: {root}/pki\nlog_file: {root}/master.log\nssh_log_file: {root}/ssh.log\n",
            root = s.join("root").display(),
            states = states.display(),
        ),
    )?;
    std::fs::write(
        states.join(format!("{STATE}.sls")),
        format!(
            "e2e_mark:\n  file.managed:\n    - name: {SALT_MARK}\n    - contents: applied by salt-ssh during the pelagos e2e run\n"
        ),
    )?;
    Ok(())
}
