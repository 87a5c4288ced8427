//! The e2e lab's network: one network namespace per run, holding a bridge
//! (the lab's management network, `10.77.0.1/24`) with one tap per VM.
//! Everything that speaks to the VMs (dnsmasq, pelagos-server, the BMC
//! simulators, conmand, salt-ssh, teuthology's client) runs inside it, so
//! no packet of the run reaches the host's own network.
//!
//! The namespace is named `pelagos-e2e-<pid of the run>`. Dropping [`Netns`]
//! kills every process still inside it and deletes it, on failure too; a run
//! killed with SIGKILL leaves it behind, and the next run removes every
//! `pelagos-e2e-*` namespace whose run is gone ([`Netns::remove_stale`]).

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prefix of the run's namespace names.
const PREFIX: &str = "pelagos-e2e-";
/// The provisioning host's address on the lab network.
pub const SERVER_IP: &str = "10.77.0.1";
/// The bridge inside the namespace.
pub const BRIDGE: &str = "br0";

/// Run `ip` with `args`; its stdout. Fails with ip's stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run ip (Debian package iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace this run made; emptied and deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `pelagos-e2e-<our pid>` with loopback up, a bridge and one tap per
    /// name in `taps` on it. Stale namespaces of dead runs are removed first.
    pub fn create(taps: &[&str]) -> Result<Netns> {
        Self::remove_stale();
        let ns = Netns {
            name: format!("{PREFIX}{}", std::process::id()),
        };
        ip(&["netns", "add", &ns.name])?;
        let n = ns.name.as_str();
        ip(&["-n", n, "link", "set", "lo", "up"])?;
        ip(&["-n", n, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n",
            n,
            "addr",
            "add",
            &format!("{SERVER_IP}/24"),
            "dev",
            BRIDGE,
        ])?;
        // For dnsmasq's router advertisements: without them iPXE waits
        // ~15 s for IPv6 after its DHCP lease.
        ip(&["-n", n, "addr", "add", "fd77::1/64", "dev", BRIDGE, "nodad"])?;
        // A second BMC address on loopback (BMC addresses are unique per lab).
        ip(&["-n", n, "addr", "add", "127.0.0.2/8", "dev", "lo"]).ok();
        ip(&["-n", n, "link", "set", BRIDGE, "up"])?;
        for tap in taps {
            ip(&["-n", n, "tuntap", "add", tap, "mode", "tap"])?;
            ip(&["-n", n, "link", "set", tap, "master", BRIDGE])?;
            ip(&["-n", n, "link", "set", tap, "up"])?;
        }
        Ok(ns)
    }

    /// A command run inside the namespace (`ip netns exec <ns> program`).
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program.as_ref());
        c
    }

    /// The pids of the processes inside `name`.
    fn pids(name: &str) -> Vec<u32> {
        ip(&["netns", "pids", name])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// SIGKILL every process inside `name` and wait (at most 10 s) until
    /// none is left.
    fn kill_all(name: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = Self::pids(name);
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill everything in namespace `name` and delete it.
    pub fn delete(name: &str) {
        Self::kill_all(name);
        if let Err(e) = ip(&["netns", "del", name]) {
            eprintln!("e2e: cannot delete network namespace {name}: {e}");
        }
    }

    /// Delete the namespaces of e2e runs that are no longer running.
    pub fn remove_stale() {
        let list = ip(&["netns", "list"]).unwrap_or_default();
        for line in list.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            let Some(pid) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let alive = Path::new("/proc").join(pid).exists();
            if !alive {
                eprintln!("e2e: removing the network namespace of a dead run: {name}");
                Self::delete(name);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        Self::delete(&self.name);
    }
}
