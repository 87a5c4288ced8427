//! One QEMU per node, for the node's whole life.
//!
//! QEMU is started powered off (`-S`) with `-no-shutdown` and a QMP socket;
//! the BMC simulator (`fake_bmc.py --qmp`) maps power operations to QMP
//! commands, so the process and its serial socket never go away and conmand
//! stays connected (conmand 0.2.7 waits a minute before retrying a socket
//! it could not connect to). The serial socket is made under a temporary
//! name and renamed to the one conman.conf names only once QEMU listens on
//! it, so conmand never sees a socket file nobody listens on.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const QEMU: &str = "qemu-system-x86_64";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// How long QEMU may take to listen on its QMP and serial sockets.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long [`Accel::detect`] lets OVMF run under KVM.
const KVM_PROBE_RUN: Duration = Duration::from_secs(3);
/// How long one QMP reply may take.
const QMP_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS.
    Bios,
    /// OVMF: pflash CODE read-only plus a private copy of the VARS.
    Uefi,
}

/// The node's network card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nic {
    /// e1000 with QEMU's iPXE option ROM (under BIOS, iPXE does the PXE boot).
    E1000,
    /// virtio-net-pci without an option ROM: OVMF's own PXE stack boots, so
    /// under UEFI the network boot loader (GRUB) is what the firmware loads.
    VirtioNoRom,
}

/// Where the NIC is plugged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// An existing tap `ifname` in network namespace `netns`; QEMU runs
    /// inside the namespace (`ip netns exec`).
    Tap { netns: String, ifname: String },
    /// QEMU's user-mode network (no PXE server: for tests of the VM itself).
    #[allow(dead_code, reason = "for ad-hoc tests of the VM alone")]
    User,
}

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// Kvm when `/dev/kvm` opens read-write and a QEMU started with
    /// `-accel kvm` runs OVMF for a few seconds; Tcg otherwise. Takes about
    /// 3 s when KVM is there.
    pub fn detect() -> Accel {
        if kvm_works() { Accel::Kvm } else { Accel::Tcg }
    }

    fn arg(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Whether KVM can run firmware here: `/dev/kvm` opens read-write, and a
/// QEMU started with `-accel kvm` (the CPU model [`Vm::start`] uses) reports
/// KVM enabled and still runs OVMF after [`KVM_PROBE_RUN`]. A nested KVM
/// can be present yet unusable: on this project's CI host `-cpu host`
/// aborts at the first vCPU reset (`failed to set MSR 0x10a`), OVMF stops
/// with "KVM internal error ... emulation failure" at its first x87
/// instruction, and iPXE hangs after "starting execution".
fn kvm_works() -> bool {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return false;
    }
    let Ok(vars) = tempfile::NamedTempFile::new() else {
        return false;
    };
    if std::fs::copy(OVMF_VARS, vars.path()).is_err() {
        return false;
    }
    let child = Command::new(QEMU)
        .args([
            "-accel",
            "kvm",
            "-machine",
            "q35",
            "-nodefaults",
            "-display",
            "none",
        ])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            vars.path().display()
        ))
        .args(["-S", "-no-shutdown", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let stdout = child.stdout.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["id"] == "kvm" {
                let _ = tx.send(v["return"]["enabled"] == true);
            } else if v["id"] == "status" {
                let _ = tx.send(v["return"]["running"] == true);
            }
        }
    });
    // stdin is kept open until QEMU is killed: EOF would make it quit.
    let mut stdin = child.stdin.take();
    let mut send = |msg: &[u8]| {
        stdin
            .as_mut()
            .is_some_and(|s| s.write_all(msg).and_then(|()| s.flush()).is_ok())
    };
    let deadline = Duration::from_secs(15);
    let ok = send(
        b"{\"execute\":\"qmp_capabilities\"}\n\
          {\"execute\":\"query-kvm\",\"id\":\"kvm\"}\n\
          {\"execute\":\"cont\"}\n",
    ) && rx.recv_timeout(deadline).unwrap_or(false)
        && {
            std::thread::sleep(KVM_PROBE_RUN);
            send(b"{\"execute\":\"query-status\",\"id\":\"status\"}\n")
        }
        && rx.recv_timeout(deadline).unwrap_or(false);
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    ok
}

/// What [`Vm::start`] starts.
#[derive(Debug, Clone)]
pub struct VmSpec<'a> {
    /// The node's name (QEMU's `-name`, the temporary serial socket's name).
    pub name: &'a str,
    /// This VM's work directory (QMP socket, OVMF vars, QEMU's stdout and
    /// stderr); created if missing.
    pub dir: &'a Path,
    /// The NIC's MAC address, `52:54:00:..`.
    pub mac: &'a str,
    pub firmware: Firmware,
    pub nic: Nic,
    pub net: Net,
    pub accel: Accel,
    pub memory_mb: u32,
    /// The serial console's unix socket, as conman.conf names it. Must be on
    /// the same file system as `dir` (it is renamed there).
    pub console_socket: &'a Path,
}

/// A QEMU started by [`Vm::start`]: killed (SIGKILL), reaped and its socket
/// files removed when dropped.
pub struct Vm {
    child: Child,
    qmp_socket: PathBuf,
    console_socket: PathBuf,
    serial_new: PathBuf,
    stderr: PathBuf,
}

impl Vm {
    /// Start QEMU powered off (-S), wait for its serial socket, rename it to
    /// `console_socket`; returns when the console socket exists and QMP
    /// answers. The QMP connection is then closed: QEMU serves one QMP client
    /// at a time, and that is the BMC simulator's.
    pub fn start(spec: &VmSpec) -> Result<Vm> {
        std::fs::create_dir_all(spec.dir)
            .with_context(|| format!("creating {}", spec.dir.display()))?;
        let qmp_socket = spec.dir.join("qmp.sock");
        let serial_new = spec.dir.join(format!("{}.sock.new", spec.name));
        for stale in [&qmp_socket, &serial_new, &spec.console_socket.to_owned()] {
            remove_if_exists(stale)?;
        }
        let stdout = spec.dir.join("qemu.stdout");
        let stderr = spec.dir.join("qemu.stderr");

        let mut cmd = match &spec.net {
            Net::Tap { netns, .. } => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", netns, QEMU]);
                c
            }
            Net::User => Command::new(QEMU),
        };
        cmd.args(["-name", spec.name])
            .args(["-machine", "q35"])
            .args(["-accel", spec.accel.arg()]);
        cmd.args(["-m", &spec.memory_mb.to_string()])
            .args(["-nodefaults", "-nographic", "-monitor", "none"])
            .arg("-serial")
            .arg(socket_arg(&serial_new))
            .arg("-qmp")
            .arg(socket_arg(&qmp_socket))
            .args(["-S", "-no-shutdown"]);
        match spec.firmware {
            Firmware::Bios => {
                cmd.args(["-boot", "order=n,strict=on"]);
            }
            Firmware::Uefi => {
                let vars = spec.dir.join("OVMF_VARS_4M.fd");
                std::fs::copy(OVMF_VARS, &vars)
                    .with_context(|| format!("copying {OVMF_VARS} to {}", vars.display()))?;
                cmd.arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"
                    ))
                    .arg("-drive")
                    .arg(format!(
                        "if=pflash,format=raw,unit=1,file={}",
                        vars.display()
                    ))
                    .args(["-boot", "strict=on"]);
            }
        }
        let netdev = match &spec.net {
            Net::Tap { ifname, .. } => {
                format!("tap,id=n0,ifname={ifname},script=no,downscript=no")
            }
            Net::User => "user,id=n0".to_owned(),
        };
        let device = match spec.nic {
            Nic::E1000 => format!("e1000,netdev=n0,mac={},bootindex=1", spec.mac),
            Nic::VirtioNoRom => {
                format!(
                    "virtio-net-pci,netdev=n0,mac={},romfile=,bootindex=1",
                    spec.mac
                )
            }
        };
        cmd.args(["-netdev", &netdev]).args(["-device", &device]);
        cmd.stdin(Stdio::null())
            .stdout(File::create(&stdout).with_context(|| stdout.display().to_string())?)
            .stderr(File::create(&stderr).with_context(|| stderr.display().to_string())?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {QEMU} for {}", spec.name))?;
        let mut vm = Vm {
            child,
            qmp_socket,
            console_socket: spec.console_socket.to_owned(),
            serial_new,
            stderr,
        };
        vm.wait_listening()
            .with_context(|| format!("QEMU for {}: {}", spec.name, vm.stderr_text()))?;
        Ok(vm)
    }

    /// QEMU's QMP socket (for `fake_bmc.py --qmp`).
    pub fn qmp_socket(&self) -> &Path {
        &self.qmp_socket
    }

    /// QEMU's process id.
    #[allow(dead_code, reason = "part of the interface, not used by the run yet")]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// QEMU's stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_listening(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut qmp = loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("exited ({status}) before its QMP socket was up");
            }
            if started.elapsed() > START_DEADLINE {
                bail!("QMP socket not up within {START_DEADLINE:?}");
            }
            if let Ok(stream) = UnixStream::connect(&self.qmp_socket) {
                break Qmp::new(stream)?;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // serial0 listening: its filename is "disconnected:unix:...,server=on"
        // until a client connects.
        loop {
            let chardevs = qmp.execute("query-chardev")?;
            let listening = chardevs.as_array().is_some_and(|devs| {
                devs.iter().any(|d| {
                    d["label"] == "serial0"
                        && d["filename"].as_str().is_some_and(|f| f.contains("unix:"))
                })
            });
            if listening && self.serial_new.exists() {
                break;
            }
            if started.elapsed() > START_DEADLINE {
                bail!("serial0 not listening within {START_DEADLINE:?}: {chardevs}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&self.serial_new, &self.console_socket).with_context(|| {
            format!(
                "renaming {} to {}",
                self.serial_new.display(),
                self.console_socket.display()
            )
        })?;
        let status = qmp.execute("query-status")?;
        if status["running"] != false {
            bail!("expected a stopped VM, QMP says {status}");
        }
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for path in [&self.qmp_socket, &self.serial_new, &self.console_socket] {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn socket_arg(path: &Path) -> String {
    format!("unix:{},server=on,wait=off", path.display())
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// A minimal QMP client: commands one at a time, events skipped.
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    fn new(stream: UnixStream) -> Result<Qmp> {
        stream.set_read_timeout(Some(QMP_TIMEOUT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("not a QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("reading QMP")? == 0 {
            bail!("QMP connection closed");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent {line:?}"))
    }

    fn execute(&mut self, command: &str) -> Result<Value> {
        let mut msg = json!({ "execute": command, "id": command }).to_string();
        msg.push('\n');
        self.writer
            .write_all(msg.as_bytes())
            .context("writing QMP")?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() || reply["id"] != command {
                continue;
            }
            if let Some(error) = reply.get("error") {
                bail!("QMP {command}: {error}");
            }
            return Ok(reply["return"].clone());
        }
    }
}
