//! `cargo xtask e2e`: one lab on one box in production mode, everything real
//! but the metal. QEMU VMs PXE-boot through dnsmasq (with the file
//! make-cfgs wrote and states.sample's boot options), pxelinux or GRUB,
//! into an installer that downloads an image add-image installed from
//! pelagos-server's image route; a BMC simulator speaking RMCP+ to ipmitool
//! drives each VM's one long-lived QEMU through QMP; conmand logs the
//! serial consoles; teuthology's own client requests the provisions and
//! salt-ssh applies a state over the VM's SSH. Then the failure drills.
//!
//! The run creates a network namespace (net.rs) and re-executes itself
//! inside it (`--inside <work dir>`): every process of the lab lives there,
//! and the namespace, with whatever still runs in it, is removed when the
//! run ends, on failure too.

pub mod guest;
mod lab;
mod net;
mod peers;
mod stages;
pub mod vm;

use anyhow::{Context, Result, bail, ensure};
use lab::{Boot, NodeDef, Paths, Secrets};
use serde_json::Value;
use stages::{Row, Source, Watch};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// QEMU accelerator: auto (KVM when usable, else TCG), kvm or tcg.
    #[arg(long, default_value = "auto")]
    accel: String,
    /// Keep the work dir (logs, consoles, TFTP root) after a passing run too.
    #[arg(long)]
    keep: bool,
    /// Only the reimages, no failure drills.
    #[arg(long)]
    no_drills: bool,
    /// Internal: run the lab inside the namespace, in this work dir.
    #[arg(long, hide = true)]
    inside: Option<PathBuf>,
}

/// The images of the run: two that boot, one whose installer hangs, one
/// whose installed OS is not the one its build says (a node that comes up
/// running something else than was requested).
fn images() -> Vec<guest::OsSpec> {
    let spec = |name: &str, version: &str, id: &str, pretty: &str, behaviour| guest::OsSpec {
        name: name.into(),
        version: version.into(),
        os_id: id.into(),
        os_version_id: version.into(),
        pretty_name: pretty.into(),
        image_id: format!("{name}-{version}-build7"),
        behaviour,
    };
    vec![
        spec(
            "e2e-alpha",
            "1.0",
            "e2ealpha",
            "E2E Alpha 1.0",
            guest::Behaviour::Normal,
        ),
        spec(
            "e2e-beta",
            "2.0",
            "e2ebeta",
            "E2E Beta 2.0",
            guest::Behaviour::Normal,
        ),
        spec(
            "e2e-hang",
            "1.0",
            "e2ehang",
            "E2E Hang 1.0",
            guest::Behaviour::HangInInstaller,
        ),
        spec(
            "e2e-liar",
            "1.0",
            "e2eliar",
            "E2E Liar 1.0",
            guest::Behaviour::LieAboutOs {
                os_id: "e2ealpha".into(),
                version_id: "1.0".into(),
            },
        ),
    ]
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent dir")
        .to_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

const ENV_BMC: &str = "PELAGOS_E2E_BMC_PASSWORD";
const ENV_NODE: &str = "PELAGOS_E2E_NODE_PASSWORD";
const ENV_NETNS: &str = "PELAGOS_E2E_NETNS";

pub fn run(args: Args) -> Result<()> {
    if let Some(work) = args.inside.clone() {
        return inside(&work, &args);
    }
    let started = Instant::now();
    ensure!(
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m))? == 0,
        "cargo xtask e2e needs root (network namespaces, taps)"
    );
    let root = workspace_root();
    eprintln!("e2e: building pelagos-server, make-cfgs and add-image");
    let st = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "pelagos-server",
            "-p",
            "make-cfgs",
            "-p",
            "add-image",
        ])
        .current_dir(&root)
        .status()?;
    ensure!(st.success(), "cargo build failed");
    let work = tempfile::Builder::new().prefix("pelagos-e2e-").tempdir()?;
    let secrets = Secrets::new();
    let t = Instant::now();
    for spec in images() {
        guest::kiwi_build(
            &work.path().join("builds").join(&spec.name),
            &spec,
            &secrets.node,
        )
        .with_context(|| format!("building image {}", spec.name))?;
    }
    eprintln!(
        "e2e: {} images built in {:.1} s",
        images().len(),
        t.elapsed().as_secs_f64()
    );
    let taps: Vec<&str> = lab::nodes().iter().map(|n| n.tap).collect();
    let ns = net::Netns::create(&taps)?;
    eprintln!("e2e: network namespace {} ready", ns.name);
    remove_on_signal(&ns.name, work.path());
    let mut child = ns.command(std::env::current_exe()?);
    child
        .args(["e2e", "--accel", &args.accel, "--inside"])
        .arg(work.path())
        .args(args.no_drills.then_some("--no-drills"))
        .env(ENV_BMC, &secrets.bmc)
        .env(ENV_NODE, &secrets.node)
        .env(ENV_NETNS, &ns.name)
        .env("PELAGOS_TEST_VENV", pelagos_testkit::venv());
    let status = child.status().context("run the lab inside the namespace")?;
    drop(ns);
    let took = started.elapsed().as_secs_f64();
    if !status.success() {
        let kept = work.keep();
        bail!(
            "e2e failed after {took:.0} s ({status}); the namespace and its processes are gone, the logs are kept in {}",
            kept.display()
        );
    }
    eprintln!("e2e: passed in {took:.0} s (wall, builds included)");
    if args.keep {
        eprintln!("e2e: work dir kept: {}", work.keep().display());
    }
    Ok(())
}

/// SIGINT or SIGTERM (Ctrl-C, a CI timeout) would end the run without its
/// destructors: kill what runs in the namespace, delete it, then exit.
fn remove_on_signal(netns: &str, work: &Path) {
    let (netns, work) = (netns.to_owned(), work.to_owned());
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        eprintln!(
            "e2e: stopped by a signal: removing {netns} and what runs in it; logs kept in {}",
            work.display()
        );
        net::Netns::delete(&netns);
        // The main thread is blocked on the lab; nothing else ends the run.
        #[allow(clippy::exit)]
        std::process::exit(130);
    });
}

/// One provision the run requests and what it must end in.
struct Scenario {
    title: &'static str,
    /// Scenarios of the same wave run at the same time.
    wave: u8,
    /// Stop the node's BMC simulator first.
    stop_bmc: bool,
    node: usize,
    os_type: &'static str,
    os_version: &'static str,
    expect: Expect,
}

enum Expect {
    /// Done: the console shows the image's installer and OS.
    Done {
        pretty: &'static str,
        image_id: &'static str,
    },
    /// The task fails with this status and these words in its answer.
    Fails {
        code: u16,
        words: &'static [&'static str],
    },
}

/// Everything running inside the namespace.
struct Lab {
    p: Paths,
    nodes: Vec<NodeDef>,
    secrets: Secrets,
    python: PathBuf,
    dnsmasq: peers::Dnsmasq,
    bmcs: Vec<peers::Bmc>,
    server: peers::Server,
    _conmand: peers::Conmand,
    _vms: Vec<vm::Vm>,
}

fn inside(work: &Path, args: &Args) -> Result<()> {
    // Die with the run outside (SIGKILLed, say): the lab's processes are
    // then killed with the namespace, at the latest by the next run.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context("prctl(PR_SET_PDEATHSIG)")?;
    let secrets = Secrets {
        bmc: std::env::var(ENV_BMC).context("no BMC password from the parent")?,
        node: std::env::var(ENV_NODE).context("no node password from the parent")?,
    };
    let lab = start_lab(work, secrets, &args.accel)?;
    let mut results = Vec::new();
    let done = |pretty, image_id| Expect::Done { pretty, image_id };
    let mut scenarios = vec![
        Scenario {
            title: "BIOS node: e2e-alpha (iPXE ROM -> pxelinux)",
            wave: 0,
            stop_bmc: false,
            node: 0,
            os_type: "e2e-alpha",
            os_version: "1.0",
            expect: done("E2E Alpha 1.0", "e2e-alpha-1.0-build7"),
        },
        Scenario {
            title: "BIOS node again: e2e-beta",
            wave: 1,
            stop_bmc: false,
            node: 0,
            os_type: "e2e-beta",
            os_version: "2.0",
            expect: done("E2E Beta 2.0", "e2e-beta-2.0-build7"),
        },
        Scenario {
            title: "UEFI node: e2e-alpha (OVMF -> GRUB)",
            wave: 2,
            stop_bmc: false,
            node: 1,
            os_type: "e2e-alpha",
            os_version: "1.0",
            expect: done("E2E Alpha 1.0", "e2e-alpha-1.0-build7"),
        },
    ];
    if !args.no_drills {
        scenarios.extend([
            Scenario {
                title: "drill: node comes up running another OS than requested",
                wave: 3,
                stop_bmc: false,
                node: 0,
                os_type: "e2e-liar",
                os_version: "1.0",
                // Expected (the build's image root) and found (the node).
                expect: Expect::Fails {
                    code: 502,
                    words: &["ID=e2eliar", "runs ID=e2ealpha"],
                },
            },
            Scenario {
                title: "drill: installer hangs (console stalls, cold restart)",
                wave: 3,
                stop_bmc: false,
                node: 1,
                os_type: "e2e-hang",
                os_version: "1.0",
                expect: Expect::Fails {
                    code: 502,
                    words: &["CannotBootException"],
                },
            },
            Scenario {
                title: "drill: BMC stopped",
                wave: 4,
                stop_bmc: true,
                node: 1,
                os_type: "e2e-beta",
                os_version: "2.0",
                expect: Expect::Fails {
                    code: 502,
                    words: &["BMCException", "unreachable"],
                },
            },
        ]);
    }
    let mut lab = lab;
    // Each wave's scenarios run at once (one per node); the reimages one
    // after another, so that their timings are a lone VM's.
    for wave in scenarios.chunk_by(|a, b| a.wave == b.wave) {
        if wave.iter().any(|s| s.stop_bmc) {
            for s in wave.iter().filter(|s| s.stop_bmc) {
                lab.bmcs[s.node].stop();
            }
        }
        let lab_ref = &lab;
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .iter()
                .map(|s| scope.spawn(move || (s, lab_ref.provision(s))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a scenario thread panicked"))
                .collect()
        });
        for (s, r) in outcomes {
            match r {
                Ok(rows) => results.push((s.title, rows)),
                Err(e) => {
                    lab.dump(s.node);
                    return Err(e.context(s.title));
                }
            }
        }
    }
    lab.check_dnsmasq_paths()?;
    lab.check_secrets()?;
    print_report(&results);
    Ok(())
}

fn start_lab(work: &Path, secrets: Secrets, accel: &str) -> Result<Lab> {
    let root = workspace_root();
    let bin = target_dir().join("debug");
    let p = Paths {
        work: work.to_owned(),
    };
    let nodes = lab::nodes();
    let timing = lab::LabTiming {
        conman_line_max_age: 30,
        max_cold_restart: 1,
    };
    lab::write_lab(&p, &secrets, &timing, 5000)?;
    lab::make_cfgs(&p, &bin.join("make-cfgs"), &root)?;
    lab::tftp_root(&p, &root)?;
    let t = Instant::now();
    for spec in images() {
        lab::add_image(&p, &bin.join("add-image"), &p.builds().join(&spec.name))?;
    }
    eprintln!(
        "e2e: add-image installed {} images in {:.1} s",
        images().len(),
        t.elapsed().as_secs_f64()
    );
    let main = lab::dnsmasq_conf(&p, &root)?;
    lab::salt_config(&p)?;
    let dnsmasq = peers::Dnsmasq::start(&main, &p.dnsmasq_dir())?;

    let accel = match accel {
        "kvm" => vm::Accel::Kvm,
        "tcg" => vm::Accel::Tcg,
        _ => vm::Accel::detect(),
    };
    eprintln!("e2e: QEMU accelerator {accel:?}");
    let netns = std::env::var(ENV_NETNS).context("no namespace name from the parent")?;
    std::fs::create_dir_all(p.conman_logs())?;
    let mut vms = Vec::new();
    for n in &nodes {
        let dir = work.join("vm").join(n.short);
        std::fs::create_dir_all(&dir)?;
        let sock = p.console_socket(n.short);
        vms.push(vm::Vm::start(&vm::VmSpec {
            name: n.short,
            dir: &dir,
            mac: n.mac,
            firmware: match n.boot {
                Boot::Bios => vm::Firmware::Bios,
                Boot::Uefi => vm::Firmware::Uefi,
            },
            nic: match n.boot {
                Boot::Bios => vm::Nic::E1000,
                Boot::Uefi => vm::Nic::VirtioNoRom,
            },
            net: vm::Net::Tap {
                netns: netns.clone(),
                ifname: n.tap.to_owned(),
            },
            accel,
            memory_mb: 1024,
            console_socket: &sock,
        })?);
    }
    let logs: Vec<PathBuf> = nodes.iter().map(|n| p.console_log(n.short)).collect();
    let conmand = peers::Conmand::start(
        &p.generated().join("states/etc/conman.conf"),
        &logs,
        &work.join("conman"),
    )?;
    let python = pelagos_testkit::venv().join("bin/python");
    let script = root.join("crates/pelagos-testkit/peers/fake_bmc.py");
    let mut bmcs = Vec::new();
    for (n, v) in nodes.iter().zip(&vms) {
        bmcs.push(peers::Bmc::start(
            &python,
            &script,
            n.bmc_ip,
            n.bmc_port,
            v.qmp_socket(),
            &secrets.bmc,
            &work.join("vm").join(n.short),
        )?);
    }
    let venv_bin = pelagos_testkit::venv().join("bin");
    let server = peers::Server::start(
        &bin.join("pelagos-server"),
        work,
        &format!("{}:5000", net::SERVER_IP),
        &venv_bin.join("salt-ssh"),
        &venv_bin,
    )?;
    eprintln!("e2e: lab up: pelagos-server at {}", server.url);
    Ok(Lab {
        p,
        nodes,
        secrets,
        python,
        dnsmasq,
        bmcs,
        server,
        _conmand: conmand,
        _vms: vms,
    })
}

impl Lab {
    /// Run one scenario through teuthology's client; the stage table.
    fn provision(&self, s: &Scenario) -> Result<Vec<Row>> {
        let n = &self.nodes[s.node];
        eprintln!("\ne2e: == {} ==", s.title);
        let mut watch = Watch::new(
            self.bmcs[s.node].ops.clone(),
            self.p.console_log(n.short),
            self.dnsmasq.log.clone(),
            self.server.log.clone(),
            n.mac,
            n.ip,
            &n.fqdn(),
        );
        let script = self.p.work.join("provision.py");
        std::fs::write(&script, include_str!("provision.py"))?;
        let out_path = self.p.work.join(format!("client-{}.out", n.short));
        let mut child = Command::new(&self.python)
            .arg(&script)
            .arg(format!("{}/", self.server.url))
            .arg(lab::DOMAIN)
            .arg(n.short)
            .arg(s.os_type)
            .arg(s.os_version)
            .arg(n.ip)
            .arg(lab::SALT_MARK)
            .env("E2E_NODE_PASSWORD", &self.secrets.node)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(
                self.p.work.join(format!("client-{}.err", n.short)),
            )?)
            .spawn()
            .context("start teuthology's client")?;
        let limit = Duration::from_secs(600);
        let status = loop {
            watch.poll();
            if let Some(st) = child.try_wait()? {
                break st;
            }
            if watch.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the provision did not end within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let done = watch.elapsed();
        watch.poll();
        let out = std::fs::read_to_string(&out_path)?;
        let err = std::fs::read_to_string(self.p.work.join(format!("client-{}.err", n.short)))
            .unwrap_or_default();
        ensure!(
            status.success(),
            "teuthology's client failed ({status}):\n{out}\n{err}"
        );
        let result: Value = serde_json::from_str(out.lines().last().unwrap_or_default())
            .with_context(|| format!("client output: {out}\n{err}"))?;
        let console = watch.new_text(Source::Console);
        match &s.expect {
            Expect::Done { pretty, image_id } => {
                ensure!(
                    result["ok"] == true && result["body"]["status"] == "done",
                    "the provision did not end done: {result}\n{err}"
                );
                ensure!(
                    console.contains("checksum ok") && console.contains(&format!("{pretty} ready")),
                    "the console does not show the installer's verified download and {pretty} starting:\n{console}"
                );
                let os_release = result["os_release"].as_str().unwrap_or_default();
                ensure!(
                    os_release.contains(&format!("PRETTY_NAME=\"{pretty}\"")),
                    "the node runs something else: {os_release}"
                );
                ensure!(result["image_id"] == *image_id, "image id: {result}");
                ensure!(
                    !result["salt_mark"].as_str().unwrap_or_default().is_empty(),
                    "salt's state left no mark on the node: {result}"
                );
                let server_log = watch.new_text(Source::Server);
                ensure!(
                    server_log.contains(&format!(
                        "Node [{}] runs [{}-{}]",
                        n.fqdn(),
                        s.os_type,
                        s.os_version
                    )),
                    "the server did not verify the OS the node runs"
                );
                ensure!(
                    server_log.contains(&format!(
                        "Boot record of node [{}] set to [local]",
                        n.fqdn()
                    )),
                    "the boot record was not put back to local"
                );
                self.record_is_local(n)?;
            }
            Expect::Fails { code, words } => {
                ensure!(
                    result["ok"] == false && result["code"] == *code,
                    "expected a failure with {code}: {result}"
                );
                let body = result["body"].to_string();
                for w in *words {
                    ensure!(body.contains(w), "the answer lacks {w:?}: {body}");
                }
                eprintln!("e2e: failed as it must: {code} {body}");
                self.record_is_local(n)?;
            }
        }
        Ok(watch.table(done))
    }

    /// `GET /node/<node>`: the node's boot record boots `local`.
    fn record_is_local(&self, n: &NodeDef) -> Result<()> {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
            ])
            .arg(format!("{}/node/{}", self.server.url, n.fqdn()))
            .output()?;
        let v: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
        ensure!(
            v["pxe"]["os"] == "local",
            "the boot record is not local: {v}"
        );
        Ok(())
    }

    /// Both boot paths really served: pxelinux's and GRUB's per-MAC records.
    fn check_dnsmasq_paths(&self) -> Result<()> {
        let log = self.dnsmasq.log_text();
        for n in &self.nodes {
            let dashed = n.mac.replace(':', "-");
            let want = match n.boot {
                Boot::Bios => format!("pxelinux.cfg/01-{dashed}"),
                Boot::Uefi => format!("grub.cfg-01-{dashed}"),
            };
            ensure!(
                log.lines().any(|l| l.contains("sent") && l.contains(&want)),
                "dnsmasq never sent {want}"
            );
        }
        Ok(())
    }

    /// Neither password shows in anything the run kept: the server's log,
    /// the task logs and answers the client saw, dnsmasq's and conmand's
    /// logs, the consoles, the BMC op logs, the generated files but
    /// conman.conf (conmand needs the BMC password; make-cfgs writes it 0600).
    fn check_secrets(&self) -> Result<()> {
        let mut files = Vec::new();
        let mut stack = vec![self.p.work.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let path = e?.path();
                if path.is_dir() && !path.ends_with("builds") && !path.ends_with("tftp") {
                    stack.push(path);
                } else if path.is_file() {
                    files.push(path);
                }
            }
        }
        let allowed = [
            self.p.lab_json(),
            self.p.generated().join("states/etc/conman.conf"),
        ];
        let mut looked = 0usize;
        for f in files.iter().filter(|f| !allowed.contains(f)) {
            let Ok(bytes) = std::fs::read(f) else {
                continue;
            };
            looked += bytes.len();
            let text = String::from_utf8_lossy(&bytes);
            for (what, secret) in [("BMC", &self.secrets.bmc), ("node", &self.secrets.node)] {
                ensure!(
                    !text.contains(secret.as_str()),
                    "the {what} password shows in {}",
                    f.display()
                );
            }
        }
        eprintln!(
            "e2e: neither password in {} files ({:.1} MB) the run left",
            files.len() - allowed.len(),
            looked as f64 / 1e6
        );
        Ok(())
    }

    /// On failure: the tails of the logs that tell why.
    fn dump(&self, node: usize) {
        let n = &self.nodes[node];
        let tail = |what: &str, path: &Path, lines: usize| {
            let text =
                String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            eprintln!(
                "---- {what} ({}) ----\n{}",
                path.display(),
                all[from..].join("\n")
            );
        };
        tail("console", &self.p.console_log(n.short), 60);
        tail("dnsmasq", &self.dnsmasq.log, 30);
        tail("server", &self.server.log, 40);
        tail("BMC ops", &self.bmcs[node].ops, 10);
    }
}

fn print_report(results: &[(&str, Vec<Row>)]) {
    println!(
        "\ne2e: per-stage timings (seconds since the BMC's power command; Δ since the previous stage)"
    );
    for (title, rows) in results {
        println!("\n  {title}");
        // Stages a failing drill never reached are left out.
        for r in rows {
            if let (Some(at), Some(d)) = (r.at, r.delta) {
                println!("    {:<20} {at:>7.1}   Δ {d:>6.1}", r.stage);
            }
        }
    }
}
