//! The node's side of the whole path: a pyghmi BMC simulator (its JSON-lines
//! op log says what the BMC was asked), a real conmand whose console is a
//! unix socket played by [`NodeSim`], and a real sshd started when the node
//! has booted.

pub use pelagos_testkit::bmc::FakeBmc;
pub use pelagos_testkit::conmand::Conmand;
use pelagos_testkit::conmand::test_conf;
use pelagos_testkit::sshd::{Sshd, SshdOptions};
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A real conmand logging the node's console into `log_dir` as make-cfgs
/// configures it (`console.%N`, sanitized, timestamped); killed on drop.
/// Returns it with its connection to the node's serial port (a unix
/// socket), which the caller plays.
pub fn start_conmand(dir: &Path, log_dir: &Path, short_name: &str) -> (Conmand, UnixStream) {
    let sock = dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::fs::create_dir_all(log_dir).unwrap();
    Conmand::start(dir, &listener, test_conf(dir, log_dir, short_name, &sock))
}

/// What the node does after each power-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Prints its boot, starts sshd, shows a login prompt.
    Boots,
    /// Prints two lines, then nothing (hung mid-boot); no sshd.
    Stalls,
    /// Keeps printing (dracut timeouts) but never starts sshd.
    NeverReady,
    /// Prints nothing at all.
    Silent,
}

const BOOT_LINES: &[&str] = &[
    "\x1b[2J\x1b[1;1HSeaBIOS (version 1.16.2-debian-1.16.2-1)",
    "iPXE 1.21.1 -- Open Source Network Boot Firmware",
    "PXELINUX 6.04 PXE 20200816  Copyright (C) 1994-2015 H. Peter Anvin et al",
    "[    0.000000] Linux version 6.4.0-150600.21-default (geeko@buildhost)",
    "[    3.804512] dracut-pre-mount[402]: kiwi: Loading image from network...",
    "[   52.004411] dracut-pre-mount[402]: kiwi: Dumping image to /dev/sda...",
    "Welcome to SUSE Linux Enterprise Server 15 SP6 (x86_64) - Kernel 6.4.0 (ttyS1).",
];

/// Pause between two console lines of a boot.
const LINE_GAP: Duration = Duration::from_millis(100);

/// Plays the node: follows the BMC simulator's op log; a power-on (`on` or
/// `cycle`) starts a boot on the console per [`Behaviour`], a power-off (or
/// the off half of a cycle) stops sshd and the console at once.
pub struct NodeSim {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    events: Arc<Mutex<Vec<String>>>,
}

struct NodeCtx {
    ops_path: PathBuf,
    console: UnixStream,
    behaviour: Behaviour,
    ssh_port: u16,
    client_pub: PathBuf,
    events: Arc<Mutex<Vec<String>>>,
}

impl NodeSim {
    /// `running`: the chassis is on and the old OS runs (its sshd answers).
    pub fn start(
        ops_path: &Path,
        console: UnixStream,
        behaviour: Behaviour,
        ssh_port: u16,
        client_pub: &Path,
        running: bool,
    ) -> NodeSim {
        let stop = Arc::new(AtomicBool::new(false));
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let ctx = NodeCtx {
            ops_path: ops_path.to_owned(),
            console,
            behaviour,
            ssh_port,
            client_pub: client_pub.to_owned(),
            events: events.clone(),
        };
        let old_sshd = running.then(|| ctx.start_sshd("old OS"));
        if running {
            ctx.line("old-os login: ");
        }
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || ctx.run(&stop, old_sshd.flatten()))
        };
        NodeSim {
            stop,
            thread: Some(thread),
            events,
        }
    }

    /// What happened on the node, in order (boots, sshd starts and stops
    /// with what each sshd logged).
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for NodeSim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Boot {
    started: Instant,
    printed: usize,
}

impl NodeCtx {
    fn event(&self, what: String) {
        self.events.lock().unwrap().push(what);
    }

    fn line(&self, text: &str) {
        let mut console = &self.console;
        let _ = console.write_all(text.as_bytes());
        if !text.ends_with(' ') {
            let _ = console.write_all(b"\r\n");
        }
    }

    fn start_sshd(&self, which: &str) -> Option<Sshd> {
        let opts = SshdOptions {
            authorized_keys: vec![self.client_pub.clone()],
            port: Some(self.ssh_port),
            ..SshdOptions::default()
        };
        match std::panic::catch_unwind(|| Sshd::start(opts)) {
            Ok(sshd) => {
                self.event(format!("sshd up ({which})"));
                Some(sshd)
            }
            Err(_) => {
                self.event(format!("sshd failed to start ({which})"));
                None
            }
        }
    }

    fn stop_sshd(&self, sshd: &mut Option<Sshd>) {
        if let Some(s) = sshd.take() {
            self.event(format!("sshd stopped; its log: {:?}", s.log()));
        }
    }

    fn run(self, stop: &AtomicBool, mut sshd: Option<Sshd>) {
        let mut offset = 0u64;
        let mut partial = String::new();
        let mut boot: Option<Boot> = None;
        let mut boots = 0;
        while !stop.load(Ordering::SeqCst) {
            for op in self.new_ops(&mut offset, &mut partial) {
                match op.as_str() {
                    "on" | "cycle" => {
                        self.stop_sshd(&mut sshd);
                        boots += 1;
                        self.event(format!("power {op}: boot {boots}"));
                        boot = Some(Boot {
                            started: Instant::now(),
                            printed: 0,
                        });
                    }
                    "off" => {
                        self.stop_sshd(&mut sshd);
                        self.event("power off".into());
                        boot = None;
                    }
                    _ => {}
                }
            }
            if let Some(b) = &mut boot {
                let due = (b.started.elapsed().as_millis() / LINE_GAP.as_millis()) as usize;
                let done = match self.behaviour {
                    Behaviour::Silent => true,
                    Behaviour::Stalls => {
                        while b.printed < due.min(2) {
                            self.line(BOOT_LINES[b.printed]);
                            b.printed += 1;
                        }
                        b.printed >= 2
                    }
                    Behaviour::NeverReady => {
                        while b.printed < due {
                            self.line(&format!(
                                "dracut-initqueue[417]: Warning: dracut-initqueue timeout - starting timeout scripts ({})",
                                b.printed
                            ));
                            b.printed += 1;
                        }
                        false
                    }
                    Behaviour::Boots => {
                        while b.printed < due.min(BOOT_LINES.len()) {
                            self.line(BOOT_LINES[b.printed]);
                            b.printed += 1;
                        }
                        if b.printed >= BOOT_LINES.len() {
                            sshd = self.start_sshd(&format!("boot {boots}"));
                            self.line("node1 login: ");
                            true
                        } else {
                            false
                        }
                    }
                };
                if done {
                    boot = None;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop_sshd(&mut sshd);
    }

    /// Complete op lines appended to the op log since the last call.
    fn new_ops(&self, offset: &mut u64, partial: &mut String) -> Vec<String> {
        let Ok(mut f) = File::open(&self.ops_path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(*offset)).is_err() {
            return Vec::new();
        }
        let mut text = String::new();
        let Ok(n) = f.read_to_string(&mut text) else {
            return Vec::new();
        };
        *offset += n as u64;
        partial.push_str(&text);
        let mut ops = Vec::new();
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                ops.push(v["op"].as_str().unwrap_or_default().to_owned());
            }
        }
        ops
    }
}
