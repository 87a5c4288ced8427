//! Reading ipmitool's error output: cleaning, redaction and classification.
//!
//! The markers below are ipmitool 1.8.19's messages (lanplus interface,
//! `-v`). Without `-v` a wrong password and an unreachable BMC both print only
//! "Error: Unable to establish IPMI v2 / RMCP+ session"; with it the first
//! adds "RAKP 2 HMAC is invalid" and the second "Get Auth Capabilities error".

/// What kind of failure ipmitool's stderr describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// ipmitool refused the lab config's credentials before sending anything.
    Misconfigured,
    Authentication,
    Unreachable,
    Rejected,
    Unknown,
}

/// ipmitool refused the credentials without contacting the BMC: IPMI v2
/// allows a user name of at most 16 bytes and a password of at most 20.
/// Retrying cannot help; the lab config must change.
const MISCONFIGURED: &[&str] = &["password is longer than", "Username is too long"];

/// The BMC answered session set-up but refused the user, the password, the
/// privilege or the cipher suite.
const AUTHENTICATION: &[&str] = &[
    "RAKP 2 HMAC is invalid",
    "RAKP 2 message indicates an error",
    "RAKP 4 message indicates an error",
    "RAKP 4 message has invalid integrity check value",
    // The BMC answered Open Session, then ignored RAKP 1: pyghmi and some
    // BMCs do this for an unknown user name.
    "no response from RAKP 1 message",
    // Some BMCs drop RAKP 3 on a wrong password.
    "no response from RAKP 3 message",
    "Set Session Privilege Level to",
    "Error in open session response message",
    "is not what we requested",
    "Unsupported cipher suite ID",
    "Unable to read password from environment",
    "user name too long",
];

/// Nothing (or nothing usable) came back from the BMC.
const UNREACHABLE: &[&str] = &[
    "Get Auth Capabilities error",
    "Error issuing Get Channel Authentication Capabilities request",
    "Address lookup for",
    "Could not open socket",
    "No response from remote controller",
    "Unable to get Chassis Power Status",
    "Unable to set Chassis Power Control",
    "Error setting Chassis Boot Parameter",
    "Error sending Chassis Status command",
];

/// The BMC answered with an error completion code, or ipmitool refused its
/// arguments.
const REJECTED: &[&str] = &[
    " failed: ",
    "This BMC does not support IPMI v2",
    "Invalid chassis power command",
    "Invalid chassis command",
    "Invalid option",
    "Invalid argument",
];

/// A busy BMC says so in session set-up; worth another try, not an
/// authentication problem.
const BUSY: &[&str] = &["insufficient resources"];

/// Lines `-v` adds on every run; they say nothing about a failure.
const VERBOSE_NOISE: &[&str] = &[
    "Loading IANA PEN Registry",
    "Using best available cipher suite",
    "Running Get VSO Capabilities",
    "Discovered IPMB address",
];

/// Completion code of "Command not supported in present state" (0xD5), as
/// ipmitool spells it: what BMCs answer to `power cycle` on an off chassis.
const NOT_IN_PRESENT_STATE: &str = "not supported in present state";

pub(crate) fn classify(stderr: &str) -> Class {
    let has = |markers: &[&str]| markers.iter().any(|m| stderr.contains(m));
    if has(MISCONFIGURED) {
        Class::Misconfigured
    } else if has(BUSY) {
        Class::Unknown
    } else if has(AUTHENTICATION) {
        Class::Authentication
    } else if has(UNREACHABLE) {
        Class::Unreachable
    } else if has(REJECTED) {
        Class::Rejected
    } else {
        Class::Unknown
    }
}

pub(crate) fn not_supported_in_present_state(stderr: &str) -> bool {
    stderr.contains(NOT_IN_PRESENT_STATE)
}

/// Every occurrence of `secret` replaced by `********`.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    pelagos_config::redact(text, secret).into_owned()
}

/// ipmitool's stderr as one line: `-v` noise and blank lines dropped, the
/// `> ` prefixes of session messages removed, lines joined with `; `.
pub(crate) fn clean(stderr: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut after_vso = false;
    for line in stderr.lines() {
        let line = line.trim();
        let line = line.strip_prefix("> ").unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        if VERBOSE_NOISE.iter().any(|n| line.starts_with(n)) {
            after_vso = line.starts_with("Running Get VSO Capabilities");
            continue;
        }
        // The VSO probe's "Invalid command" answer is expected on non-VSO BMCs.
        if after_vso && line.starts_with("Invalid completion code received") {
            after_vso = false;
            continue;
        }
        after_vso = false;
        out.push(line);
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from ipmitool 1.8.19 -v against the pyghmi simulator and
    // from ipmitool's sources (real-BMC messages).
    const WRONG_PASSWORD: &str = "Loading IANA PEN Registry...\nUsing best available cipher suite 3\n\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const UNKNOWN_USER: &str = "Loading IANA PEN Registry...\nUsing best available cipher suite 3\n\n> Error: no response from RAKP 1 message\n> Error: no response from RAKP 1 message\n> Error: no response from RAKP 1 message\n> Error: no response from RAKP 1 message\nSet Session Privilege Level to ADMINISTRATOR failed\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const REAL_BMC_UNKNOWN_USER: &str = "> RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const CIPHER_MISMATCH: &str = "Loading IANA PEN Registry...\nAuthentication algorithm 0x01 is not what we requested 0x03\n\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const BAD_SUITE: &str =
        "Unsupported cipher suite ID : 99\n\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const SILENT_PORT: &str = "Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const NO_SUCH_HOST: &str = "Address lookup for no-such-host.invalid failed\nCould not open socket!\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const CYCLE_WHEN_OFF: &str = "Loading IANA PEN Registry...\nUsing best available cipher suite 3\n\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nDiscovered IPMB address 0x0\nSet Chassis Power Control to Cycle failed: Command not supported in present state\n";
    const BOOT_PARAM_REJECTED: &str =
        "Set Chassis Boot Parameter 5 failed: Invalid data field in request\n";
    const LOST_SESSION: &str = "Unable to set Chassis Power Control to Cycle\n";
    const BUSY_BMC: &str = "Error in open session response message : insufficient resources for session\n\nError: Unable to establish IPMI v2 / RMCP+ session\n";
    const BARE: &str = "Error: Unable to establish IPMI v2 / RMCP+ session\n";
    // ipmitool 1.8.19 -I lanplus with a 21-byte IPMI_PASSWORD, and with a
    // 17-byte -U: refused before any packet is sent.
    const LONG_PASSWORD: &str = "lanplus: password is longer than 20 bytes.\n";
    const LONG_USER: &str = "Username is too long (> 16 bytes)\n";

    #[test]
    fn classifies_recorded_messages() {
        for (text, want) in [
            (WRONG_PASSWORD, Class::Authentication),
            (UNKNOWN_USER, Class::Authentication),
            (REAL_BMC_UNKNOWN_USER, Class::Authentication),
            (CIPHER_MISMATCH, Class::Authentication),
            (BAD_SUITE, Class::Authentication),
            (SILENT_PORT, Class::Unreachable),
            (NO_SUCH_HOST, Class::Unreachable),
            (LOST_SESSION, Class::Unreachable),
            (CYCLE_WHEN_OFF, Class::Rejected),
            (BOOT_PARAM_REJECTED, Class::Rejected),
            (BUSY_BMC, Class::Unknown),
            (BARE, Class::Unknown),
            ("", Class::Unknown),
            (LONG_PASSWORD, Class::Misconfigured),
            (LONG_USER, Class::Misconfigured),
        ] {
            assert_eq!(classify(text), want, "{text:?}");
        }
        assert!(not_supported_in_present_state(CYCLE_WHEN_OFF));
        assert!(!not_supported_in_present_state(BOOT_PARAM_REJECTED));
    }

    #[test]
    fn clean_drops_verbose_noise_only() {
        assert_eq!(
            clean(CYCLE_WHEN_OFF),
            "Set Chassis Power Control to Cycle failed: Command not supported in present state"
        );
        assert_eq!(
            clean(WRONG_PASSWORD),
            "RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session"
        );
        // An "Invalid completion code" not following the VSO probe is kept.
        assert_eq!(
            clean("Invalid completion code received: Invalid command\n"),
            "Invalid completion code received: Invalid command"
        );
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        assert_eq!(
            redact("pw=hunter2 again hunter2.", "hunter2"),
            "pw=******** again ********."
        );
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
