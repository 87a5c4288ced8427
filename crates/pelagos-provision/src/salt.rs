//! Configuration: apply salt states to a freshly installed node with `salt-ssh`.
//!
//! For each state the original ran
//! `salt-ssh -i --roster-file <roster> -c <salt_cfg_dir> --no-host-keys --key-deploy --passwd <pw> <node> state.apply <sls>`.
//! Here salt-ssh's options end with `--` before the target
//! (`... --key-deploy -- <node> state.apply <sls>`), and every state name is
//! checked with [`pelagos_config::check_sls_name`] before any argv is built:
//! salt-ssh reads options anywhere on its command line, so a state named
//! `--out-file=...` or `-r` would otherwise change what it does.
//! The password stays out of argv: each run gets a private (0600) temp
//! roster holding a copy of the node's entry from the lab's roster with
//! `passwd:` (and `priv:` when configured) added, removed when the run ends.
//! `host` and `port` in that entry are the node's provisioning address and
//! `ssh_port`, where the readiness probe has just found SSH.
//!
//! salt-ssh's output is streamed line by line as `tracing` events (target
//! `pelagos::salt`, fields `node`, `sls`, `stream`), with the password
//! replaced by `********` should it ever appear. A run fails, naming the
//! state, on a non-zero exit, on a `Failed: N` summary with N > 0, or when
//! salt finds no target (salt-ssh exits 0 then). Each state has a timeout;
//! on timeout or when the future is dropped (a dismissed provision), the
//! whole salt-ssh process group is killed.
//!
//! ```no_run
//! # async fn demo(lab: &pelagos_config::LabConfig, node: &pelagos_config::Node) {
//! use pelagos_provision::salt::{SaltSsh, states_to_apply};
//! let salt = SaltSsh::from_lab(lab);
//! let states = states_to_apply(&lab.sls_list, "ceph-extra other");
//! // In order; stop at the first failure.
//! for sls in &states {
//!     if let Err(e) = salt.apply_state(node, sls).await {
//!         tracing::error!("{e}");
//!         break;
//!     }
//! }
//! # }
//! ```

use pelagos_config::{LabConfig, Node, Secret, SlsError};
use rustix::process::{Pid, Signal, kill_process_group};
use serde_norway::{Mapping, Value};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// How long output is still read after salt-ssh has exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Lines of output kept for the error message of a failed state.
const TAIL_LINES: usize = 5;

/// How to run salt-ssh for the lab.
#[derive(Debug, Clone)]
pub struct SaltSsh {
    /// The salt-ssh executable: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// The lab's roster (YAML, `<node>: {host:, user:, ...}`), as make-cfgs writes it.
    pub roster_file: PathBuf,
    /// Directory holding salt's `master` config (`-c`).
    pub config_dir: PathBuf,
    /// The nodes' login password (`target_node_password`); empty: none.
    pub password: Secret,
    /// Client key for the roster's `priv:`, unless the node's entry names one.
    pub priv_key: Option<PathBuf>,
    /// Limit of one state run.
    pub timeout: Duration,
    /// Where the temp rosters go (default: the system temp dir).
    pub temp_dir: Option<PathBuf>,
}

/// One state applied successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRun {
    /// The state that was applied.
    pub sls: String,
    /// Lines of output (stdout and stderr), redacted.
    pub lines: usize,
    /// Wall time of the whole [`SaltSsh::apply_state`] call: name check,
    /// temp roster and the salt-ssh run.
    pub elapsed: Duration,
}

/// Why a state could not be applied; every variant names the node and
/// (except roster problems) the state.
#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    /// The lab's roster could not be read: nothing was run.
    #[error("cannot read salt roster {path}: {source}")]
    RosterRead {
        /// The roster file ([`SaltSsh::roster_file`]).
        path: PathBuf,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The lab's roster is not YAML, its top level is not a mapping, or the
    /// node's entry is not a mapping: nothing was run.
    #[error("salt roster {path} is not a YAML mapping of targets: {message}")]
    RosterSyntax {
        /// The roster file ([`SaltSsh::roster_file`]).
        path: PathBuf,
        /// The YAML error, or which part is not a mapping.
        message: String,
    },
    /// The private temp roster of the run could not be created or written:
    /// nothing was run.
    #[error("cannot write the temporary salt roster for node {node} in {dir}: {source}")]
    TempRoster {
        /// The node's name.
        node: String,
        /// Where it was to go ([`SaltSsh::temp_dir`], else the system temp
        /// dir).
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// salt-ssh could not be started (not found, not executable, ...).
    #[error("cannot start {program} for salt state '{sls}' on node {node}: {source}")]
    Spawn {
        /// The program that was run ([`SaltSsh::program`]).
        program: PathBuf,
        /// The node's name.
        node: String,
        /// The state it was to apply.
        sls: String,
        /// The spawn error.
        #[source]
        source: io::Error,
    },
    /// Not a salt state name (checked again here, whoever the caller):
    /// nothing was run.
    #[error("refusing salt state for node {node}: {error}")]
    InvalidState {
        /// The node's name.
        node: String,
        /// The rule the name breaks (it carries the name).
        #[source]
        error: SlsError,
    },
    /// salt-ssh ran past the timeout; its whole process group was killed.
    #[error("salt state '{sls}' on node {node} did not finish within {timeout:?}")]
    Timeout {
        /// The node's name.
        node: String,
        /// The state being applied.
        sls: String,
        /// The limit that passed ([`SaltSsh::timeout`]).
        timeout: Duration,
    },
    /// salt-ssh ended, but the state did not apply: a non-zero exit, a
    /// `Failed: N` summary with N > 0, no matching target, or salt-ssh
    /// could not be waited for.
    #[error(
        "salt state '{sls}' failed on node {node}: {reason}{}",
        tail_suffix(tail)
    )]
    Failed {
        /// The node's name.
        node: String,
        /// The state that failed.
        sls: String,
        /// What showed the failure: the exit status, salt's summary, ...
        reason: String,
        /// The last lines of output (redacted).
        tail: Vec<String>,
    },
}

fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last output: {}", tail.join(" | "))
    }
}

impl SaltError {
    /// The state this error is about, if it is about one.
    pub fn sls(&self) -> Option<&str> {
        match self {
            SaltError::Spawn { sls, .. }
            | SaltError::Timeout { sls, .. }
            | SaltError::Failed { sls, .. } => Some(sls),
            SaltError::InvalidState {
                error: SlsError::Name { value },
                ..
            } => Some(value),
            _ => None,
        }
    }
}

/// The states of a provision: the lab's `sls_list`, then the request's
/// `extra_sls`/`add_sls` (space-separated; blanks dropped). The one place
/// that list is made: the engine builds every provision's with it.
pub fn states_to_apply(sls_list: &[String], extra_sls: &str) -> Vec<String> {
    sls_list
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .chain(extra_sls.split_whitespace().map(str::to_owned))
        .collect()
}

impl SaltSsh {
    /// salt-ssh on `PATH`, with the lab's roster, salt config dir (`.` when
    /// unset, as the original), `target_node_password` and `salt_timeout`.
    pub fn from_lab(lab: &LabConfig) -> Self {
        let config_dir = if lab.salt_cfg_dir.is_empty() {
            PathBuf::from(".")
        } else {
            PathBuf::from(&lab.salt_cfg_dir)
        };
        Self {
            program: PathBuf::from("salt-ssh"),
            roster_file: PathBuf::from(&lab.roster_file),
            config_dir,
            password: lab.target_node_password.clone(),
            priv_key: None,
            timeout: lab.timing.salt_timeout,
            temp_dir: None,
        }
    }

    /// The arguments of one run (no secrets in them): `-i --no-host-keys
    /// --key-deploy` as the original, minus `--passwd`, then `--` (the end
    /// of salt-ssh's options), `<target> state.apply <sls>`. `sls` must be a
    /// state name ([`pelagos_config::check_sls_name`]), else nothing is built.
    pub fn command_args(
        &self,
        roster: &Path,
        target: &str,
        sls: &str,
    ) -> Result<Vec<OsString>, SaltError> {
        pelagos_config::check_sls_name(sls).map_err(|error| SaltError::InvalidState {
            node: target.to_owned(),
            error,
        })?;
        let mut args: Vec<OsString> = vec!["-i".into(), "--roster-file".into()];
        args.push(roster.into());
        args.push("-c".into());
        args.push(self.config_dir.clone().into());
        for a in [
            "--no-host-keys",
            "--key-deploy",
            "--",
            target,
            "state.apply",
            sls,
        ] {
            args.push(a.into());
        }
        Ok(args)
    }

    /// The node's roster entry as the temp roster holds it (with the password).
    pub fn roster_entry(&self, node: &Node) -> Result<Mapping, SaltError> {
        let text =
            std::fs::read_to_string(&self.roster_file).map_err(|source| SaltError::RosterRead {
                path: self.roster_file.clone(),
                source,
            })?;
        let syntax = |message: String| SaltError::RosterSyntax {
            path: self.roster_file.clone(),
            message,
        };
        let roster: Value = serde_norway::from_str(&text).map_err(|e| syntax(e.to_string()))?;
        let mut entry = match roster {
            Value::Mapping(mut m) => match m.remove(node.node.as_str()) {
                Some(Value::Mapping(e)) => e,
                Some(other) => {
                    return Err(syntax(format!(
                        "the entry of node {} is not a mapping: {other:?}",
                        node.node
                    )));
                }
                None => {
                    tracing::warn!(
                        target: "pelagos::salt", node = %node.node,
                        roster = %self.roster_file.display(),
                        "node has no entry in the salt roster; connecting as root"
                    );
                    Mapping::new()
                }
            },
            Value::Null => Mapping::new(),
            other => return Err(syntax(format!("top level is {other:?}"))),
        };
        entry.insert("host".into(), node.provision_ip().into());
        entry.insert("port".into(), u64::from(node.ssh_port).into());
        if !entry.contains_key("user") {
            entry.insert("user".into(), "root".into());
        }
        if !self.password.is_empty() {
            entry.insert("passwd".into(), self.password.expose().into());
        }
        add_ssh_options(&mut entry);
        if let Some(key) = &self.priv_key
            && !entry.contains_key("priv")
        {
            entry.insert("priv".into(), key.display().to_string().into());
        }
        Ok(entry)
    }

    /// Write the private roster of one run; it is removed when dropped.
    fn temp_roster(&self, node: &Node) -> Result<tempfile::NamedTempFile, SaltError> {
        let entry = self.roster_entry(node)?;
        let mut roster = Mapping::new();
        roster.insert(node.node.as_str().into(), Value::Mapping(entry));
        let text = serde_norway::to_string(&roster).map_err(|e| SaltError::RosterSyntax {
            path: self.roster_file.clone(),
            message: e.to_string(),
        })?;
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let write = || -> io::Result<tempfile::NamedTempFile> {
            // NamedTempFile creates the file 0600 with O_EXCL.
            let mut file = tempfile::Builder::new()
                .prefix("pelagos-roster-")
                .suffix(".yaml")
                .tempfile_in(&dir)?;
            io::Write::write_all(&mut file, text.as_bytes())?;
            file.as_file().sync_all()?;
            Ok(file)
        };
        write().map_err(|source| SaltError::TempRoster {
            node: node.node.clone(),
            dir: dir.clone(),
            source,
        })
    }

    /// Apply one state with salt-ssh: check its name, write the temp roster,
    /// spawn salt-ssh, stream its output until it exits (killed at the
    /// timeout), then judge the run.
    pub async fn apply_state(&self, node: &Node, sls: &str) -> Result<StateRun, SaltError> {
        let started = tokio::time::Instant::now();
        // Checked before the roster (with the password) is even written.
        pelagos_config::check_sls_name(sls).map_err(|error| SaltError::InvalidState {
            node: node.node.clone(),
            error,
        })?;
        let roster = self.temp_roster(node)?;
        let args = self.command_args(roster.path(), &node.node, sls)?;
        let mut child = self.spawn(node, sls, &args)?;
        let group = GroupKiller::new(child.id());
        let run = self.run_to_exit(&mut child, &group, node, sls);
        let outcome = tokio::time::timeout(self.timeout, run).await;
        let Ok((status, lines)) = outcome else {
            return Err(self.timed_out(&group, node, sls));
        };
        group.disarm();
        drop(roster);
        Self::judge(node, sls, status, &lines, started)
    }

    /// Start salt-ssh in its own process group, its output piped.
    fn spawn(&self, node: &Node, sls: &str, args: &[OsString]) -> Result<Child, SaltError> {
        tracing::info!(
            target: "pelagos::salt", node = %node.node, sls,
            "running {} {}", self.program.display(),
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
        );
        ensure_home_ssh_dir();
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so that a timeout or dismissal also
            // stops the ssh/scp children salt-ssh forks.
            .process_group(0);
        cmd.spawn().map_err(|source| SaltError::Spawn {
            program: self.program.clone(),
            node: node.node.clone(),
            sls: sls.to_owned(),
            source,
        })
    }

    /// Stream salt-ssh's output (redacted) into the log until it exits, and
    /// a little longer for what is still buffered; its exit status and every
    /// line of output.
    async fn run_to_exit(
        &self,
        child: &mut Child,
        group: &GroupKiller,
        node: &Node,
        sls: &str,
    ) -> (io::Result<ExitStatus>, Vec<String>) {
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            unreachable!("stdout and stderr are piped");
        };
        let collected = std::sync::Mutex::new(Vec::new());
        let status = {
            let redact = |line: &str| redact(line, &self.password);
            let output = async {
                tokio::join!(
                    stream_lines(stdout, "stdout", &node.node, sls, &redact, &collected),
                    stream_lines(stderr, "stderr", &node.node, sls, &redact, &collected),
                )
            };
            tokio::pin!(output);
            tokio::select! {
                _ = &mut output => child.wait().await,
                status = child.wait() => {
                    // A left-over descendant may hold the pipes open: read
                    // what is buffered, but do not wait for it to exit.
                    if tokio::time::timeout(DRAIN_GRACE, &mut output).await.is_err() {
                        tracing::warn!(
                            target: "pelagos::salt", node = %node.node, sls,
                            "salt-ssh exited but left processes holding its output; killing them"
                        );
                        group.kill();
                    }
                    status
                }
            }
        };
        let lines = collected.into_inner().unwrap_or_else(|p| p.into_inner());
        (status, lines)
    }

    /// Kill salt-ssh's process group after the timeout; the error saying so.
    fn timed_out(&self, group: &GroupKiller, node: &Node, sls: &str) -> SaltError {
        group.kill(); // `child` (kill_on_drop) follows when dropped
        tracing::warn!(
            target: "pelagos::salt", node = %node.node, sls,
            "salt state timed out after {:?}; salt-ssh killed", self.timeout
        );
        SaltError::Timeout {
            node: node.node.clone(),
            sls: sls.to_owned(),
            timeout: self.timeout,
        }
    }

    /// The result of a run that ended: applied, or failed naming why and
    /// the last lines of output.
    fn judge(
        node: &Node,
        sls: &str,
        status: io::Result<ExitStatus>,
        lines: &[String],
        started: tokio::time::Instant,
    ) -> Result<StateRun, SaltError> {
        let failed = |reason: String| SaltError::Failed {
            node: node.node.clone(),
            sls: sls.to_owned(),
            reason,
            tail: tail(lines),
        };
        let status = status.map_err(|e| failed(format!("cannot wait for salt-ssh: {e}")))?;
        match verdict(status, lines) {
            None => {
                let run = StateRun {
                    sls: sls.to_owned(),
                    lines: lines.len(),
                    elapsed: started.elapsed(),
                };
                tracing::info!(
                    target: "pelagos::salt", node = %node.node, sls,
                    "salt state applied in {:.1} s", run.elapsed.as_secs_f64()
                );
                Ok(run)
            }
            Some(reason) => {
                let err = failed(reason);
                tracing::error!(target: "pelagos::salt", node = %node.node, sls, "{err}");
                Err(err)
            }
        }
    }
}

/// Host keys are neither checked nor recorded: a node gets a new host key
/// with every install. `-i --no-host-keys` alone is not enough: salt-ssh
/// 3008 builds the scp that ships the state tarball without those options,
/// so scp prompts for an unknown host key (salt then fails with "The host key
/// needs to be accepted"); options from the roster reach every ssh and scp.
const SSH_OPTIONS: [&str; 2] = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"];

fn add_ssh_options(entry: &mut Mapping) {
    let mut options = match entry.remove("ssh_options") {
        Some(Value::Sequence(list)) => list,
        Some(Value::String(one)) => vec![Value::String(one)],
        _ => Vec::new(),
    };
    for option in SSH_OPTIONS {
        let key = option.split('=').next().unwrap_or(option);
        let already = options.iter().any(|o| {
            o.as_str()
                .is_some_and(|o| o.split('=').next().unwrap_or(o).eq_ignore_ascii_case(key))
        });
        if !already {
            options.push(option.into());
        }
    }
    entry.insert("ssh_options".into(), Value::Sequence(options));
}

/// `--key-deploy` hands the password login to `ssh-copy-id`, which makes its
/// scratch dir under `~/.ssh` of the user running salt-ssh and fails when
/// that dir is missing, as it is for a fresh service account (salt-ssh then
/// runs the state but never installs its key). Create it, 0700, as ssh would.
fn ensure_home_ssh_dir() {
    use std::os::unix::fs::DirBuilderExt;
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        tracing::warn!(
            target: "pelagos::salt",
            "HOME is not set: salt-ssh's --key-deploy (ssh-copy-id) cannot install its key"
        );
        return;
    };
    let dir = Path::new(&home).join(".ssh");
    if dir.is_dir() {
        return;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => tracing::info!(
            target: "pelagos::salt",
            "created {} for salt-ssh's --key-deploy (ssh-copy-id needs it)", dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => tracing::warn!(
            target: "pelagos::salt",
            "cannot create {} ({e}): salt-ssh's --key-deploy cannot install its key",
            dir.display()
        ),
    }
}

async fn stream_lines(
    reader: impl AsyncRead + Unpin,
    stream: &'static str,
    node: &str,
    sls: &str,
    redact: &impl Fn(&str) -> String,
    collected: &std::sync::Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                let raw = String::from_utf8_lossy(&buf);
                let line = redact(raw.trim_end_matches(['\n', '\r']));
                tracing::info!(target: "pelagos::salt", node, sls, stream, "{line}");
                collected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(line);
            }
            Err(e) => {
                tracing::warn!(target: "pelagos::salt", node, sls, stream, "cannot read salt-ssh output: {e}");
                break;
            }
        }
    }
}

/// `None` when the run succeeded, else what showed it failed.
fn verdict(status: ExitStatus, lines: &[String]) -> Option<String> {
    if !status.success() {
        return Some(match status.code() {
            Some(code) => format!("salt-ssh exited with code {code}"),
            None => format!("salt-ssh ended by {status}"),
        });
    }
    let failed: u64 = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("Failed:"))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    if failed > 0 {
        return Some(format!("{failed} state(s) failed (salt-ssh exited 0)"));
    }
    if lines
        .iter()
        .any(|l| l.contains("No matching targets found in roster"))
    {
        return Some("salt-ssh found no matching target in the roster".into());
    }
    None
}

fn tail(lines: &[String]) -> Vec<String> {
    let meaningful: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    meaningful[meaningful.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The line with every occurrence of the password masked.
pub fn redact(line: &str, password: &Secret) -> String {
    password.redact(line).into_owned()
}

/// Kills salt-ssh's process group unless disarmed: salt-ssh forks ssh and
/// scp children that `kill_on_drop` (which only kills salt-ssh) would orphan.
struct GroupKiller(AtomicU32);

impl GroupKiller {
    fn new(pgid: Option<u32>) -> Self {
        Self(AtomicU32::new(pgid.unwrap_or(0)))
    }

    fn disarm(&self) {
        self.0.store(0, Ordering::SeqCst);
    }

    /// Kill the group now (once).
    fn kill(&self) {
        let pgid = self.0.swap(0, Ordering::SeqCst);
        if let Some(pgid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
            // An error means the group is gone already: nothing to kill.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn states_are_the_labs_then_the_requests() {
        let lab = vec!["base".to_owned(), " ".to_owned(), "ceph".to_owned()];
        assert_eq!(
            states_to_apply(&lab, "  extra1   extra2 "),
            ["base", "ceph", "extra1", "extra2"]
        );
        assert_eq!(states_to_apply(&[], ""), Vec::<String>::new());
    }

    #[test]
    fn redaction_masks_every_occurrence() {
        let pw = Secret::new("s3cr3t");
        assert_eq!(redact("a s3cr3t b s3cr3t", &pw), "a ******** b ********");
        assert_eq!(redact("nothing", &Secret::default()), "nothing");
    }

    #[test]
    fn verdict_reads_exit_status_and_summary() {
        let ok = ExitStatus::from_raw(0);
        let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(verdict(ok, &lines(&["Succeeded: 1", "Failed:    0"])), None);
        assert!(
            verdict(ok, &lines(&["Failed:    2"]))
                .unwrap()
                .contains("2 state(s)")
        );
        assert!(
            verdict(ExitStatus::from_raw(20 << 8), &[])
                .unwrap()
                .contains("code 20")
        );
        assert!(
            verdict(ExitStatus::from_raw(9), &[])
                .unwrap()
                .contains("signal")
        );
        assert!(
            verdict(
                ok,
                &lines(&["[ERROR   ] No matching targets found in roster."])
            )
            .unwrap()
            .contains("no matching target")
        );
    }

    #[test]
    fn args_carry_no_password() {
        let salt = SaltSsh {
            program: "salt-ssh".into(),
            roster_file: "deploy.roster".into(),
            config_dir: "/etc/salt".into(),
            password: Secret::new("pw"),
            priv_key: None,
            timeout: Duration::from_secs(1),
            temp_dir: None,
        };
        let args = salt
            .command_args(Path::new("/tmp/r.yaml"), "n1.lab", "ceph")
            .unwrap();
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-i",
                "--roster-file",
                "/tmp/r.yaml",
                "-c",
                "/etc/salt",
                "--no-host-keys",
                "--key-deploy",
                "--",
                "n1.lab",
                "state.apply",
                "ceph"
            ]
        );
    }

    #[test]
    fn args_are_not_built_for_a_bad_state_name() {
        let salt = SaltSsh {
            program: "salt-ssh".into(),
            roster_file: "deploy.roster".into(),
            config_dir: "/etc/salt".into(),
            password: Secret::default(),
            priv_key: None,
            timeout: Duration::from_secs(1),
            temp_dir: None,
        };
        for bad in ["--out-file=/root/.bashrc", "-r", "", "a b", "../x"] {
            let err = salt
                .command_args(Path::new("/tmp/r.yaml"), "n1.lab", bad)
                .unwrap_err();
            assert!(
                matches!(&err, SaltError::InvalidState { node, error: SlsError::Name { value } }
                    if node == "n1.lab" && value == bad),
                "{err:?}"
            );
            assert_eq!(err.sls(), Some(bad));
            assert!(
                err.to_string()
                    .starts_with("refusing salt state for node n1.lab: invalid salt state name"),
                "{err}"
            );
        }
    }
}
