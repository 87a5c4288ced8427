//! Why a BMC operation failed.

use std::path::PathBuf;
use std::time::Duration;

/// A failed BMC operation.
///
/// Messages read well after a prefix, as in the API's `BMCException <message>`:
/// they start with the operation and the BMC (`power on failed on BMC
/// node1 (10.0.0.5:623): ...`), then what went wrong, ipmitool's own words (the
/// password, if it ever appears there, replaced by `********`) and the
/// command run, which never holds the password (it travels in the
/// environment).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BmcError {
    /// The BMC refused the session: wrong user or password, a user without
    /// the privilege asked for, or a cipher suite it does not accept. Never
    /// retried.
    #[error(
        "{op} failed on BMC {bmc}: authentication refused for user {user:?} (check ipmi_user, ipmi_pass and cipher_suite): {stderr} [{command}]"
    )]
    Authentication {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The IPMI user the session was opened as.
        user: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's standard error, redacted.
        stderr: String,
    },
    /// ipmitool refused the lab config's credentials without contacting the
    /// BMC: IPMI v2 allows a user name of at most 16 bytes and a password of
    /// at most 20. Never retried.
    #[error(
        "{op} failed on BMC {bmc}: ipmitool refused the credentials (IPMI v2 allows at most 16 bytes in ipmi_user and 20 in ipmi_pass; fix the lab config): {stderr} [{command}]"
    )]
    Misconfigured {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's standard error, redacted.
        stderr: String,
    },
    /// No answer from the BMC (address lookup failed, no reply to session
    /// set-up, or the session went silent). Retried.
    #[error("{op} failed on BMC {bmc}: unreachable ({attempts} attempt(s)): {stderr} [{command}]")]
    Unreachable {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's standard error, redacted.
        stderr: String,
        /// How many times the command ran, retries included.
        attempts: u32,
    },
    /// The BMC answered the command with an error completion code (for
    /// example "Command not supported in present state"), or ipmitool
    /// refused the arguments. Not retried.
    #[error("{op} failed on BMC {bmc}: rejected: {stderr} [{command}]")]
    Rejected {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's standard error, redacted.
        stderr: String,
    },
    /// ipmitool did not finish within the per-command timeout and was
    /// killed. Retried.
    #[error(
        "{op} failed on BMC {bmc}: no answer within {timeout:?} ({attempts} attempt(s)), ipmitool killed [{command}]"
    )]
    Timeout {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// The per-command timeout that expired.
        timeout: Duration,
        /// How many times the command ran, retries included.
        attempts: u32,
    },
    /// ipmitool failed in a way not recognised above. Retried.
    #[error(
        "{op} failed on BMC {bmc}: ipmitool {status} ({attempts} attempt(s)): {stderr} [{command}]"
    )]
    Failed {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's exit status.
        status: String,
        /// ipmitool's standard error, redacted.
        stderr: String,
        /// How many times the command ran, retries included.
        attempts: u32,
    },
    /// ipmitool succeeded but printed something this crate cannot read.
    #[error("{op} failed on BMC {bmc}: unexpected ipmitool output {stdout:?} [{command}]")]
    UnexpectedOutput {
        /// The BMC: its name and `host:port`.
        bmc: String,
        /// The operation, as the message starts (`power on`, `chassis bootdev pxe`, ...).
        op: String,
        /// The ipmitool command line that ran (without the password).
        command: String,
        /// ipmitool's standard output, redacted.
        stdout: String,
    },
    /// The ipmitool program is not there.
    #[error(
        "cannot run BMC tool {}: not found (install ipmitool, or set the tool's path)",
        program.display()
    )]
    NotInstalled {
        /// The program that was to run.
        program: PathBuf,
        /// Why it could not run.
        #[source]
        source: std::io::Error,
    },
    /// The ipmitool program could not be started.
    #[error("cannot run BMC tool {}: {source}", program.display())]
    Spawn {
        /// The program that was to run.
        program: PathBuf,
        /// Why it could not run.
        #[source]
        source: std::io::Error,
    },
    /// The node has no `bmc_ip` in the lab config.
    #[error("node {node} has no bmc_ip in the lab config: its power cannot be controlled")]
    NoAddress {
        /// The node without a BMC address.
        node: String,
    },
}

impl BmcError {
    /// Whether trying the same command again may help: no answer, a timeout
    /// or an unrecognised failure. Authentication failures, refused
    /// credentials and rejections are final.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Failed { .. }
        )
    }

    /// The command line run (no secret in it), when a command was run.
    pub fn command(&self) -> Option<&str> {
        match self {
            Self::Authentication { command, .. }
            | Self::Misconfigured { command, .. }
            | Self::Unreachable { command, .. }
            | Self::Rejected { command, .. }
            | Self::Timeout { command, .. }
            | Self::Failed { command, .. }
            | Self::UnexpectedOutput { command, .. } => Some(command),
            Self::NotInstalled { .. } | Self::Spawn { .. } | Self::NoAddress { .. } => None,
        }
    }

    /// ipmitool's error output (cleaned, secrets redacted), when there is one.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Self::Authentication { stderr, .. }
            | Self::Misconfigured { stderr, .. }
            | Self::Unreachable { stderr, .. }
            | Self::Rejected { stderr, .. }
            | Self::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}
