//! The ipmitool backend: one `ipmitool -I lanplus` process per command.

use crate::stderr::{self, Class};
use crate::{BmcError, BmcTarget, BootDevice, BootOptions, PowerAction, PowerControl, PowerState};
use async_trait::async_trait;
use pelagos_config::Timing;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tracing::Instrument;

/// The environment variable ipmitool's `-E` reads the password from.
/// ipmitool reads `IPMITOOL_PASSWORD` first, so that one is removed from the
/// child's environment.
const PASSWORD_ENV: &str = "IPMI_PASSWORD";
const SHADOWING_PASSWORD_ENV: &str = "IPMITOOL_PASSWORD";

/// How ipmitool is run.
#[derive(Debug, Clone, PartialEq)]
pub struct IpmiToolConfig {
    /// The ipmitool program: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// Limit for one ipmitool run; it is killed after that.
    pub timeout: Duration,
    /// Runs of one command before giving up (at least 1). Authentication
    /// failures and rejections are never retried.
    pub attempts: u32,
    /// Wait before the second run; doubled for each further run, up to 8×.
    pub backoff: Duration,
    /// ipmitool's own retransmissions (`-R`, one second apart, `-N 1`).
    /// `None`: the most (up to ipmitool's default 4) whose total,
    /// about R×(R+1) seconds, fits in 80% of `timeout`, so a silent BMC is
    /// reported by ipmitool as unreachable before the timeout kills it.
    pub session_retries: Option<u32>,
}

impl Default for IpmiToolConfig {
    fn default() -> Self {
        Self {
            program: PathBuf::from("ipmitool"),
            timeout: Duration::from_secs(20),
            attempts: 3,
            backoff: Duration::from_secs(1),
            session_retries: None,
        }
    }
}

impl IpmiToolConfig {
    /// Timeout and attempts from the lab config's `ipmi_timeout` and
    /// `ipmi_retries`; the rest default.
    pub fn from_timing(timing: &Timing) -> Self {
        let default = Self::default();
        Self {
            timeout: Some(timing.ipmi_timeout)
                .filter(|d| !d.is_zero())
                .unwrap_or(default.timeout),
            attempts: timing.ipmi_retries.max(1),
            ..default
        }
    }

    /// The `-R` value passed to ipmitool.
    pub fn effective_session_retries(&self) -> u32 {
        if let Some(r) = self.session_retries {
            return r;
        }
        let budget = self.timeout.as_secs_f64() * 0.8;
        (1..=4u32)
            .rev()
            .find(|r| f64::from(r * (r + 1)) <= budget)
            .unwrap_or(1)
    }

    fn backoff_before(&self, next_attempt: u32) -> Duration {
        // next_attempt >= 2: backoff, 2×, 4×, 8×, 8×, ...
        let doublings = next_attempt.saturating_sub(2).min(3);
        self.backoff * (1u32 << doublings)
    }
}

/// Drives BMCs with `ipmitool -I lanplus -E`.
///
/// The password goes to ipmitool through `IPMI_PASSWORD` only, never on the
/// command line. `-v` is always passed: it is what tells a wrong password
/// ("RAKP 2 HMAC is invalid") from a silent BMC ("Get Auth Capabilities
/// error"); its routine lines are dropped from error messages.
///
/// `power cycle` reads the power state once and powers an off chassis on
/// instead (real BMCs reject a cycle when off, some silently do nothing);
/// this is the one place that decides it, callers just ask for a cycle. Only
/// if the cycle is still rejected as "not supported in present state" (the
/// chassis went off in between) is the state read again, and an off chassis
/// powered on.
#[derive(Debug, Clone, Default)]
pub struct IpmiTool {
    config: IpmiToolConfig,
}

impl IpmiTool {
    /// A backend running ipmitool as `config` says.
    pub fn new(config: IpmiToolConfig) -> Self {
        Self { config }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &IpmiToolConfig {
        &self.config
    }

    /// The arguments for `op` on `target`, program excluded.
    fn args(&self, target: &BmcTarget, op: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "-I".into(),
            "lanplus".into(),
            "-H".into(),
            target.host.clone(),
            "-p".into(),
            target.port.to_string(),
        ];
        if !target.user.is_empty() {
            args.extend(["-U".into(), target.user.clone()]);
        }
        args.push("-E".into());
        if let Some(suite) = target.cipher_suite {
            args.extend(["-C".into(), suite.to_string()]);
        }
        args.extend([
            "-v".into(),
            "-N".into(),
            "1".into(),
            "-R".into(),
            self.config.effective_session_retries().to_string(),
        ]);
        args.extend(op.iter().map(|s| (*s).to_owned()));
        args
    }

    /// The command as shown in logs and errors (the password is never in
    /// it; redacted anyway in case the user name or host contains it).
    fn command_line(&self, target: &BmcTarget, args: &[String]) -> String {
        stderr::redact(
            &format!("{} {}", self.config.program.display(), args.join(" ")),
            target.password.expose(),
        )
    }

    /// Run `op` with retries; ipmitool's stdout on success.
    async fn run(&self, target: &BmcTarget, op: &[&str]) -> Result<String, BmcError> {
        let op_text = op.join(" ");
        let args = self.args(target, op);
        let command = self.command_line(target, &args);
        let span = tracing::info_span!(
            "bmc_command",
            bmc = %target.label(),
            host = %target.host,
            port = target.port,
            op = %op_text,
        );
        async {
            let attempts = self.config.attempts.max(1);
            let mut attempt = 1;
            loop {
                tracing::debug!(attempt, %command, "running ipmitool");
                let started = Instant::now();
                let result = self
                    .run_once(target, &op_text, &args, &command, attempt)
                    .await;
                let elapsed_ms = started.elapsed().as_millis();
                match result {
                    Ok(stdout) => {
                        tracing::info!(attempt, elapsed_ms, "BMC command succeeded");
                        return Ok(stdout);
                    }
                    Err(error) if error.is_retryable() && attempt < attempts => {
                        let wait = self.config.backoff_before(attempt + 1);
                        tracing::warn!(attempt, elapsed_ms, %error, ?wait, "BMC command failed, retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Err(error) => {
                        tracing::warn!(attempt, elapsed_ms, %error, "BMC command failed");
                        return Err(error);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One ipmitool run: spawn, collect its output within the timeout (killed
    /// after it), classify the result.
    async fn run_once(
        &self,
        target: &BmcTarget,
        op: &str,
        args: &[String],
        command: &str,
        attempt: u32,
    ) -> Result<String, BmcError> {
        let child = self.spawn(target, args)?;
        let output = self.collect(child).await;
        let run = Run {
            target,
            op,
            command,
            attempt,
        };
        let status = match output.status {
            Some(Ok(status)) => status,
            Some(Err(source)) => {
                return Err(BmcError::Spawn {
                    program: self.config.program.clone(),
                    source,
                });
            }
            None => return Err(self.timed_out(&run, &output.stderr)),
        };
        let stdout = stderr::redact(
            &String::from_utf8_lossy(&output.stdout),
            target.password.expose(),
        );
        if status.success() {
            return Ok(stdout);
        }
        Err(failed(&run, status, &stdout, &output.stderr))
    }

    /// Start ipmitool with the password in its environment only.
    fn spawn(&self, target: &BmcTarget, args: &[String]) -> Result<Child, BmcError> {
        let program = &self.config.program;
        Command::new(program)
            .args(args)
            .env_remove(SHADOWING_PASSWORD_ENV)
            .env(PASSWORD_ENV, target.password.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    BmcError::NotInstalled {
                        program: program.clone(),
                        source,
                    }
                } else {
                    BmcError::Spawn {
                        program: program.clone(),
                        source,
                    }
                }
            })
    }

    /// Read stdout and stderr to the end and wait for the exit, all within
    /// the timeout; after it, kill ipmitool and keep what it had written.
    async fn collect(&self, mut child: Child) -> Output {
        let mut child_out = child.stdout.take();
        let mut child_err = child.stderr.take();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let finished = tokio::time::timeout(self.config.timeout, async {
            let read_out = async {
                if let Some(s) = child_out.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let read_err = async {
                if let Some(s) = child_err.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            };
            let ((), (), status) = tokio::join!(read_out, read_err, child.wait());
            status
        })
        .await;
        if finished.is_err() {
            // Kill and reap now rather than leave it to kill_on_drop.
            let _ = child.kill().await;
        }
        Output {
            status: finished.ok(),
            stdout: out,
            stderr: err,
        }
    }

    /// The error of a run killed after the timeout.
    fn timed_out(&self, run: &Run<'_>, err: &[u8]) -> BmcError {
        let raw_err = String::from_utf8_lossy(err);
        let cleaned = stderr::redact(&stderr::clean(&raw_err), run.target.password.expose());
        tracing::debug!(attempt = run.attempt, stderr = %cleaned, "ipmitool killed after the timeout");
        // A BMC that answered session set-up and then ignored the
        // user's RAKP messages has refused the login: retrying
        // would only repeat the wait.
        if stderr::classify(&raw_err) == Class::Authentication {
            return BmcError::Authentication {
                bmc: run.target.label(),
                user: run.target.user.clone(),
                op: run.op.to_owned(),
                command: run.command.to_owned(),
                stderr: format!(
                    "{cleaned} (ipmitool killed after {:?})",
                    self.config.timeout
                ),
            };
        }
        BmcError::Timeout {
            bmc: run.target.label(),
            op: run.op.to_owned(),
            command: run.command.to_owned(),
            timeout: self.config.timeout,
            attempts: run.attempt,
        }
    }

    async fn chassis_power(&self, target: &BmcTarget, action: PowerAction) -> Result<(), BmcError> {
        self.run(target, &["power", action.as_ipmitool()])
            .await
            .map(drop)
    }
}

/// What one ipmitool run left: its exit (`None`: killed after the timeout)
/// and its raw output.
struct Output {
    status: Option<std::io::Result<ExitStatus>>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The command an ipmitool run was for, as its errors name it.
struct Run<'a> {
    target: &'a BmcTarget,
    op: &'a str,
    command: &'a str,
    attempt: u32,
}

/// The error of a run that exited unsuccessfully, by what its stderr says;
/// `stdout` is already redacted.
fn failed(run: &Run<'_>, status: ExitStatus, stdout: &str, err: &[u8]) -> BmcError {
    let raw_err = String::from_utf8_lossy(err);
    let cleaned = stderr::redact(&stderr::clean(&raw_err), run.target.password.expose());
    let (bmc, op, command) = (
        run.target.label(),
        run.op.to_owned(),
        run.command.to_owned(),
    );
    match stderr::classify(&raw_err) {
        Class::Misconfigured => BmcError::Misconfigured {
            bmc,
            op,
            command,
            stderr: cleaned,
        },
        Class::Authentication => BmcError::Authentication {
            bmc,
            user: run.target.user.clone(),
            op,
            command,
            stderr: cleaned,
        },
        Class::Unreachable => BmcError::Unreachable {
            bmc,
            op,
            command,
            stderr: cleaned,
            attempts: run.attempt,
        },
        Class::Rejected => BmcError::Rejected {
            bmc,
            op,
            command,
            stderr: cleaned,
        },
        Class::Unknown => BmcError::Failed {
            bmc,
            op,
            command,
            status: status.to_string(),
            stderr: if cleaned.is_empty() {
                stdout.trim().to_owned()
            } else {
                cleaned
            },
            attempts: run.attempt,
        },
    }
}

/// The state in ipmitool's `power status` answer ("Chassis Power is on").
fn parse_power_status(stdout: &str) -> Option<PowerState> {
    stdout.lines().find_map(
        |line| match line.trim().strip_prefix("Chassis Power is ")?.trim() {
            "on" => Some(PowerState::On),
            "off" => Some(PowerState::Off),
            _ => None,
        },
    )
}

#[async_trait]
impl PowerControl for IpmiTool {
    async fn power_status(&self, target: &BmcTarget) -> Result<PowerState, BmcError> {
        let op = ["power", "status"];
        let stdout = self.run(target, &op).await?;
        parse_power_status(&stdout).ok_or_else(|| BmcError::UnexpectedOutput {
            bmc: target.label(),
            op: op.join(" "),
            command: self.command_line(target, &self.args(target, &op)),
            stdout: stdout.trim().to_owned(),
        })
    }

    async fn power(&self, target: &BmcTarget, action: PowerAction) -> Result<(), BmcError> {
        if action != PowerAction::Cycle {
            return self.chassis_power(target, action).await;
        }
        if self.power_status(target).await? == PowerState::Off {
            tracing::info!(bmc = %target.label(), "Chassis is off: power on instead of power cycle");
            return self.chassis_power(target, PowerAction::On).await;
        }
        match self.chassis_power(target, PowerAction::Cycle).await {
            Err(error @ BmcError::Rejected { .. })
                if stderr::not_supported_in_present_state(error.stderr().unwrap_or_default()) =>
            {
                if self.power_status(target).await? == PowerState::Off {
                    tracing::info!(
                        bmc = %target.label(),
                        "Power cycle rejected, chassis went off: power on"
                    );
                    self.chassis_power(target, PowerAction::On).await
                } else {
                    Err(error)
                }
            }
            other => other,
        }
    }

    async fn set_boot_device(
        &self,
        target: &BmcTarget,
        device: BootDevice,
        options: BootOptions,
    ) -> Result<(), BmcError> {
        let mut op = vec!["chassis", "bootdev", device.as_ipmitool()];
        let flags: Vec<&str> = [
            options.uefi.then_some("efiboot"),
            options.persistent.then_some("persistent"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let flags = format!("options={}", flags.join(","));
        if options.uefi || options.persistent {
            op.push(&flags);
        }
        self.run(target, &op).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelagos_config::Secret;

    #[test]
    fn power_status_output() {
        assert_eq!(
            parse_power_status("Chassis Power is on\n"),
            Some(PowerState::On)
        );
        assert_eq!(
            parse_power_status("Chassis Power is off\n"),
            Some(PowerState::Off)
        );
        assert_eq!(parse_power_status("Chassis Power is unknown\n"), None);
        assert_eq!(parse_power_status(""), None);
    }

    #[test]
    fn argv_has_no_password_and_the_options_asked_for() {
        let tool = IpmiTool::default();
        let target = BmcTarget::new("10.0.0.5", "admin", Secret::new("hunter2"))
            .with_port(6230)
            .with_cipher_suite(Some(3));
        let args = tool.args(&target, &["chassis", "bootdev", "pxe", "options=efiboot"]);
        assert_eq!(
            args.join(" "),
            "-I lanplus -H 10.0.0.5 -p 6230 -U admin -E -C 3 -v -N 1 -R 3 chassis bootdev pxe options=efiboot"
        );
        assert!(!args.iter().any(|a| a.contains("hunter2") || a == "-P"));
    }

    #[test]
    fn session_retries_fit_the_timeout() {
        let with = |secs: f64| IpmiToolConfig {
            timeout: Duration::from_secs_f64(secs),
            ..IpmiToolConfig::default()
        };
        assert_eq!(with(20.0).effective_session_retries(), 3); // 12 s <= 16 s
        assert_eq!(with(30.0).effective_session_retries(), 4); // 20 s <= 24 s
        assert_eq!(with(3.0).effective_session_retries(), 1);
        assert_eq!(with(0.5).effective_session_retries(), 1);
        let fixed = IpmiToolConfig {
            session_retries: Some(2),
            ..with(1.0)
        };
        assert_eq!(fixed.effective_session_retries(), 2);
    }

    #[test]
    fn backoff_doubles_up_to_eight_times() {
        let c = IpmiToolConfig {
            backoff: Duration::from_millis(100),
            ..IpmiToolConfig::default()
        };
        let waits: Vec<_> = (2..=7).map(|n| c.backoff_before(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 800, 800]);
    }

    #[test]
    fn config_from_timing() {
        let timing = Timing {
            ipmi_timeout: Duration::from_millis(2500),
            ipmi_retries: 0,
            ..Timing::default()
        };
        let c = IpmiToolConfig::from_timing(&timing);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.attempts, 1);
        let c = IpmiToolConfig::from_timing(&Timing::default());
        assert_eq!((c.timeout, c.attempts), (Duration::from_secs(20), 3));
    }
}
