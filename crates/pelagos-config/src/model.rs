//! The typed lab config. Field names are the original's JSON keys; every
//! setting the original did not have carries a default, so old files load.

use crate::mac::MacAddr;
use crate::secret::Secret;
use crate::validate::Problem;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The whole lab: global settings plus the nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabConfig {
    /// BMC user name of every node's BMC (IPMI v2: at most
    /// [`IPMI_USER_MAX`](crate::IPMI_USER_MAX) bytes, a lab-wide problem
    /// otherwise). Handed to ipmitool (`-U`) and written into each `ipmi:`
    /// console's `IPMIOPTS` (`U:<user>`) in `conman.conf`, so it cannot hold
    /// a comma. Default: empty.
    #[serde(default)]
    pub ipmi_user: String,
    /// BMC password of every node's BMC (at most
    /// [`IPMI_PASS_MAX`](crate::IPMI_PASS_MAX) bytes). Reaches ipmitool only
    /// through `IPMI_PASSWORD` in its environment, and `conman.conf`
    /// (written mode 0600) as `P:<pass>` in `IPMIOPTS`, so it cannot hold a
    /// comma. Default: empty.
    #[serde(default)]
    pub ipmi_pass: Secret,
    /// Password of the provisioned nodes' login (the salt roster's user,
    /// `root`): handed to salt-ssh in its 0600 temporary roster and used by
    /// the OS check's SSH login. Empty (the default): no password; salt-ssh
    /// and the OS check log in with a key instead.
    #[serde(default)]
    pub target_node_password: Secret,
    /// Kernel file of the `maintenance_image` OS, relative to the TFTP
    /// root's `boot/` directory (its boot record names `boot/<kernel>`).
    /// Default: empty.
    #[serde(default)]
    pub maintenance_image_kernel: String,
    /// Initrd file of the `maintenance_image` OS, relative to the TFTP
    /// root's `boot/` directory, as [`LabConfig::maintenance_image_kernel`].
    /// Default: empty.
    #[serde(default)]
    pub maintenance_image_initrd: String,
    /// Address of the provisioning host as nodes see it (TFTP/HTTP server).
    #[serde(default)]
    pub default_pxe_server: String,
    /// DNS domain of the lab: a `ptr-record` in `network_nodes.conf` names
    /// `<short name>.<domain>`, or just the short name when this is empty
    /// (the default).
    #[serde(default)]
    pub domain: String,
    /// The salt-ssh roster a provision reads (`--roster-file`), relative to
    /// the server's working directory unless absolute; make-cfgs writes
    /// the roster as `deploy.roster` in its target directory whatever this
    /// says. Default: `deploy.roster`.
    #[serde(default = "default_roster_file")]
    pub roster_file: String,
    /// salt-ssh's config directory (`-c`), holding its `master` file.
    /// Empty (the default): `.`, the server's working directory.
    #[serde(default)]
    pub salt_cfg_dir: String,
    /// Salt states applied after every OS install, in order, before a
    /// request's `extra_sls`. The original wrote them as one comma-separated
    /// string; a JSON list is accepted too. Each must pass
    /// [`check_sls_name`](crate::check_sls_name), and at most
    /// [`SLS_STATES_MAX`](crate::SLS_STATES_MAX) are allowed (lab-wide
    /// problems otherwise). Default: none.
    #[serde(default, deserialize_with = "de_string_list")]
    pub sls_list: Vec<String>,
    /// Where conmand writes `console.<short name>` logs: `SERVER logdir` of
    /// the generated `conman.conf`, and where the server reads the consoles.
    /// Default: `/var/log/conman`.
    #[serde(default = "default_conman_log_dir")]
    pub conman_log_dir: PathBuf,
    /// After SSH answers, log in and check that the node runs the requested
    /// image (its os-release `ID`/`VERSION_ID` and `/etc/ImageID` against
    /// the image's manifest) before the provision goes on. Default: on.
    #[serde(default = "default_true", deserialize_with = "de_yes_no")]
    pub verify_os: bool,
    /// Timeouts and retry knobs of a provision, written as top-level keys
    /// of the lab (`"ipmi_timeout": 20`, not inside a `timing` object);
    /// each missing one takes its default.
    #[serde(default, flatten)]
    pub timing: Timing,
    /// Kernel command-line options of the boot records, under the `pxe`
    /// key. Default: [`PxeSettings::default`].
    #[serde(default)]
    pub pxe: PxeSettings,
    /// The lab's machines, in file order (the order of every generated
    /// file). An empty list is a lab-wide problem.
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// Timeouts and retry knobs of a provision. The lab writes durations in
/// seconds (a JSON number, fractions allowed); the model holds them as
/// [`Duration`]s, checked at load (see [`Timing::MAX_SECS`]) and written back
/// as seconds. Defaults are the original's.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(try_from = "TimingSecs", into = "TimingSecs")]
pub struct Timing {
    /// Overall wait for a node to become ready after power-on.
    pub wait_node_ready_timeout: Duration,
    /// Time a node needs before its console says anything meaningful.
    pub hardware_start_delay: Duration,
    /// A console whose last meaningful line is older than this is stalled.
    pub conman_line_max_age: Duration,
    /// Cold restarts (power off, [`Timing::cold_restart_delay`], power on)
    /// of a node whose console stalled before the provision fails with
    /// CannotBoot (a count, not seconds). Default: 3.
    pub max_cold_restart: u32,
    /// Time between power off and power on in a cold restart.
    pub cold_restart_delay: Duration,
    /// Interval between SSH readiness probes.
    pub ssh_probe_interval: Duration,
    /// Timeout of one SSH probe (connect, banner, key exchange).
    pub ssh_probe_timeout: Duration,
    /// Timeout of one BMC command.
    pub ipmi_timeout: Duration,
    /// Attempts of one BMC command before it fails.
    pub ipmi_retries: u32,
    /// Timeout of one salt state run.
    pub salt_timeout: Duration,
    /// How long finished tasks and their logs are kept.
    pub data_life_time: Duration,
}

impl Timing {
    /// Longest duration a lab may set, in seconds (ten years): any longer
    /// (or negative, or not a number) is refused at load, so deadlines
    /// computed from the timing never overflow.
    pub const MAX_SECS: f64 = 10.0 * 365.0 * 86_400.0;
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            wait_node_ready_timeout: Duration::from_secs(900),
            hardware_start_delay: Duration::from_secs(30),
            conman_line_max_age: Duration::from_secs(180),
            max_cold_restart: 3,
            cold_restart_delay: Duration::from_secs(30),
            ssh_probe_interval: Duration::from_secs(5),
            ssh_probe_timeout: Duration::from_secs(5),
            ipmi_timeout: Duration::from_secs(20),
            ipmi_retries: 3,
            salt_timeout: Duration::from_secs(1800),
            data_life_time: Duration::from_secs(12 * 3600),
        }
    }
}

/// [`Timing`] as the lab writes it: durations in seconds. Reading through it
/// keeps the accepted inputs and the type errors of a plain number.
#[derive(Deserialize, Serialize)]
#[serde(default)]
struct TimingSecs {
    wait_node_ready_timeout: f64,
    hardware_start_delay: f64,
    conman_line_max_age: f64,
    max_cold_restart: u32,
    cold_restart_delay: f64,
    ssh_probe_interval: f64,
    ssh_probe_timeout: f64,
    ipmi_timeout: f64,
    ipmi_retries: u32,
    salt_timeout: f64,
    data_life_time: f64,
}

impl Default for TimingSecs {
    fn default() -> Self {
        Timing::default().into()
    }
}

impl From<Timing> for TimingSecs {
    fn from(t: Timing) -> Self {
        Self {
            wait_node_ready_timeout: t.wait_node_ready_timeout.as_secs_f64(),
            hardware_start_delay: t.hardware_start_delay.as_secs_f64(),
            conman_line_max_age: t.conman_line_max_age.as_secs_f64(),
            max_cold_restart: t.max_cold_restart,
            cold_restart_delay: t.cold_restart_delay.as_secs_f64(),
            ssh_probe_interval: t.ssh_probe_interval.as_secs_f64(),
            ssh_probe_timeout: t.ssh_probe_timeout.as_secs_f64(),
            ipmi_timeout: t.ipmi_timeout.as_secs_f64(),
            ipmi_retries: t.ipmi_retries,
            salt_timeout: t.salt_timeout.as_secs_f64(),
            data_life_time: t.data_life_time.as_secs_f64(),
        }
    }
}

impl TryFrom<TimingSecs> for Timing {
    type Error = Problem;

    fn try_from(t: TimingSecs) -> Result<Self, Problem> {
        Ok(Self {
            wait_node_ready_timeout: seconds("wait_node_ready_timeout", t.wait_node_ready_timeout)?,
            hardware_start_delay: seconds("hardware_start_delay", t.hardware_start_delay)?,
            conman_line_max_age: seconds("conman_line_max_age", t.conman_line_max_age)?,
            max_cold_restart: t.max_cold_restart,
            cold_restart_delay: seconds("cold_restart_delay", t.cold_restart_delay)?,
            ssh_probe_interval: seconds("ssh_probe_interval", t.ssh_probe_interval)?,
            ssh_probe_timeout: seconds("ssh_probe_timeout", t.ssh_probe_timeout)?,
            ipmi_timeout: seconds("ipmi_timeout", t.ipmi_timeout)?,
            ipmi_retries: t.ipmi_retries,
            salt_timeout: seconds("salt_timeout", t.salt_timeout)?,
            data_life_time: seconds("data_life_time", t.data_life_time)?,
        })
    }
}

/// A lab's seconds as a [`Duration`], to the nearest nanosecond; a negative,
/// non-finite or longer than [`Timing::MAX_SECS`] value is a problem naming
/// the field and the value.
fn seconds(field: &str, secs: f64) -> Result<Duration, Problem> {
    if secs.is_finite() && (0.0..=Timing::MAX_SECS).contains(&secs) {
        // At most 3.2e17 ns: fits a u64.
        return Ok(Duration::from_nanos((secs * 1e9).round() as u64));
    }
    let why = if secs.is_nan() {
        "not a number"
    } else if secs < 0.0 {
        "negative"
    } else {
        "too long"
    };
    Err(Problem {
        node: None,
        field: field.to_owned(),
        value: secs.to_string(),
        message: format!(
            "not a duration in seconds: {why} (expected 0 to {})",
            Timing::MAX_SECS
        ),
        scope: crate::validate::Scope::Lab,
    })
}

/// What goes into boot records besides the node and the OS.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PxeSettings {
    /// Kernel console options, in every image's and the maintenance image's
    /// boot record. Default: `console=tty1 console=ttyS1,115200`.
    pub console_opts: String,
    /// Kernel options for NIC naming, first on an image's boot record
    /// line (not the maintenance image's). Default: `biosdevname=0
    /// net.ifnames=0`.
    pub bios_opts: String,
    /// Debug options of the kiwi installer's initrd, on an image's boot
    /// record line after the console options. Default: `rd.debug
    /// rd.kiwi.debug`; empty to turn them off.
    pub debug_opts: String,
    /// Base URL of the image tree for `rd.kiwi.install.image=`. Empty: the
    /// server's own image route on `default_pxe_server`.
    pub image_base_url: String,
}

impl Default for PxeSettings {
    fn default() -> Self {
        Self {
            console_opts: "console=tty1 console=ttyS1,115200".into(),
            bios_opts: "biosdevname=0 net.ifnames=0".into(),
            debug_opts: "rd.debug rd.kiwi.debug".into(),
            image_base_url: String::new(),
        }
    }
}

/// One machine of the lab.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Node {
    /// Name or FQDN; the key used by the REST API and salt.
    pub node: String,
    /// The original's name used only for booting (a name outside the
    /// cluster and teuthology networks). Kept and shown as written; no
    /// generated file or provision step uses it. Default: empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_node: String,
    /// The management NIC (PXE boot, DHCP); none without a `mac`. A `mac`
    /// that is not a MAC reads as none here and is reported by validation,
    /// from [`Node::raw`].
    #[serde(
        default,
        deserialize_with = "de_mac",
        skip_serializing_if = "Option::is_none"
    )]
    pub mac: Option<MacAddr>,
    /// IPv4 address of the management NIC ([`Node::mac`]): its
    /// `dhcp-host`/`ptr-record` in `network_nodes.conf` when
    /// [`Node::ip_type`] is dynamic, and where the readiness probe, the OS
    /// check and salt (`host:` in `deploy.roster`) reach the node unless
    /// [`Node::boot_ip`] is set. Unique across the lab's `ip` and `hsm_ip`.
    /// Default: empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// Whether make-cfgs writes a DHCP record for [`Node::ip`]. Default:
    /// unmanaged.
    #[serde(default)]
    pub ip_type: IpType,
    /// MAC of the BMC's NIC, for its `<short name>-bmc` DHCP record when
    /// [`Node::bmc_ip_type`] is dynamic; parsed as [`Node::mac`]. Unique
    /// across every MAC of the lab.
    #[serde(
        default,
        deserialize_with = "de_mac",
        skip_serializing_if = "Option::is_none"
    )]
    pub bmc_mac: Option<MacAddr>,
    /// IPv4 address of the node's BMC: where ipmitool sends power and boot
    /// device commands (`-H`), the default console device `ipmi:<bmc_ip>` in
    /// `conman.conf` (a node with neither this nor [`Node::console_dev`]
    /// gets no console there), and the `<short name>-bmc` DHCP record when
    /// [`Node::bmc_ip_type`] is dynamic. Unique across the lab's BMCs.
    /// Empty (the default): no BMC; the production BMC driver fails every
    /// command for the node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bmc_ip: String,
    /// Whether make-cfgs writes a DHCP record for [`Node::bmc_ip`].
    /// Default: unmanaged.
    #[serde(default)]
    pub bmc_ip_type: IpType,
    /// UDP port of the BMC's RMCP+ service (ipmitool `-p`). Default: 623.
    #[serde(default = "default_bmc_port")]
    pub bmc_port: u16,
    /// IPMI cipher suite; ipmitool's default (17) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<u8>,
    /// MACs of the high-speed NICs: one string (comma-separated) or a list.
    #[serde(
        default,
        deserialize_with = "de_mac_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hsm_mac: Vec<MacAddr>,
    /// IPv4 address of the high-speed network: one `<short name>-hsm`
    /// `dhcp-host` for all of [`Node::hsm_mac`] when [`Node::hsm_ip_type`] is
    /// dynamic. Unique across the lab's `ip` and `hsm_ip`. Default: empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hsm_ip: String,
    /// Whether make-cfgs writes a DHCP record for [`Node::hsm_ip`].
    /// Default: unmanaged.
    #[serde(default)]
    pub hsm_ip_type: IpType,
    /// Address used to reach the node while provisioning, else `ip`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_ip: String,
    /// Port of the node's SSH server for the readiness probe.
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// Firmware boots through UEFI: GRUB/iPXE records and `options=efiboot`.
    #[serde(default, deserialize_with = "de_yes_no")]
    pub uefi: bool,
    /// conman `dev=` override (default `ipmi:<bmc_ip>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_dev: Option<String>,
    /// The node's role in the lab (`client`, `storage`, ...): reserved in the
    /// original, shown by the REST API, used by nothing else. Default: empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Free text about the node: the `description` column of its row in
    /// `sql/nodes.sql`, and shown by the REST API. Default: empty.
    #[serde(default)]
    pub comment: String,
    /// teuthology machine type label: the `machine_type` column of the
    /// node's row in `sql/nodes.sql` (at most 32 characters). Default:
    /// empty.
    #[serde(default)]
    pub t_machine_type: String,
    /// teuthology `arch` column in `sql/nodes.sql` (at most 16 characters).
    /// Default: `x86-64`.
    #[serde(default = "default_t_arch")]
    pub t_arch: String,
    /// Left out of the teuthology SQL (`sql/nodes.sql`). `"yes"`/`"no"` or
    /// a boolean; default: no.
    #[serde(default, deserialize_with = "de_yes_no")]
    pub t_exclude: bool,
    /// After the salt states, power cycle the node once more and wait until
    /// it is ready again before the provision is done. `"yes"`/`"no"` or a
    /// boolean; default: no.
    #[serde(default, deserialize_with = "de_yes_no")]
    pub provision_need_reboot: bool,
    /// Failure injection for the simulated lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimSpec>,
    /// The record as the lab config wrote it: what the REST API shows, so
    /// clients see the same keys and values as with the original.
    #[serde(skip)]
    pub raw: serde_json::Map<String, serde_json::Value>,
    /// The problems that disable this node (empty: the node is usable),
    /// set by [`LabConfig::disable_bad_nodes`]. A disabled node is listed
    /// (with these) but never provisioned.
    #[serde(skip)]
    pub problems: Vec<Problem>,
    /// What the record could not be read as (a value of the wrong type):
    /// the node was read with defaults instead, and validation reports these.
    #[serde(skip)]
    pub(crate) read_problems: Vec<Problem>,
}

impl Node {
    /// The lab config left this node unusable ([`Node::problems`]).
    pub fn is_disabled(&self) -> bool {
        !self.problems.is_empty()
    }

    /// Text before the first dot: conman console and DHCP host name.
    pub fn short_name(&self) -> &str {
        self.node.split('.').next().unwrap_or(&self.node)
    }

    /// Where the readiness probe and salt reach the node.
    pub fn provision_ip(&self) -> &str {
        if self.boot_ip.is_empty() {
            &self.ip
        } else {
            &self.boot_ip
        }
    }

    /// MAC lower-case with dashes, as in `pxelinux.cfg/01-<mac>`; empty
    /// without a MAC.
    pub fn mac_dashed(&self) -> String {
        self.mac.map(|m| m.dashed()).unwrap_or_default()
    }

    /// conman `dev=` of this node's console.
    pub fn console_device(&self) -> String {
        match &self.console_dev {
            Some(d) => d.clone(),
            None => format!("ipmi:{}", self.bmc_ip),
        }
    }
}

/// Whether make-cfgs writes a DHCP record for an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpType {
    /// `dynamic`: make-cfgs writes a `dhcp-host` and a `ptr-record` for the
    /// address in `network_nodes.conf`; the matching MAC and address are
    /// then required.
    Dynamic,
    /// `static`: an address fixed outside DHCP; make-cfgs writes no record
    /// for it, as for unmanaged.
    Static,
    /// `unmanaged` (or empty, or absent: the default): the generated files
    /// leave the address to someone else; no DHCP record is written.
    #[default]
    Unmanaged,
    /// A value the original did not know; validation reports it.
    #[serde(skip)]
    Unknown,
}

impl<'de> Deserialize<'de> for IpType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IpType;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address type (dynamic, static or unmanaged)")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IpType, E> {
                Ok(match s {
                    "dynamic" => IpType::Dynamic,
                    "static" => IpType::Static,
                    "unmanaged" | "" => IpType::Unmanaged,
                    _ => IpType::Unknown,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Simulated-lab behaviour of one node.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct SimSpec {
    /// Every BMC command fails.
    pub bmc_error: bool,
    /// The console stops printing mid-boot every time.
    pub console_stall: bool,
    /// SSH never answers.
    pub never_ready: bool,
    /// The node ignores its PXE record and boots the OS on its disk: the
    /// check of the running OS fails.
    pub wrong_os: bool,
    /// Salt states fail.
    pub salt_error: bool,
    /// Boot time in seconds, overriding the simulation mode's.
    pub boot_time: Option<f64>,
}

fn default_true() -> bool {
    true
}
fn default_roster_file() -> String {
    "deploy.roster".into()
}
fn default_conman_log_dir() -> PathBuf {
    PathBuf::from("/var/log/conman")
}
fn default_bmc_port() -> u16 {
    623
}
fn default_ssh_port() -> u16 {
    22
}
fn default_t_arch() -> String {
    "x86-64".into()
}

/// `"yes"`/`"no"` as the original wrote them, or a JSON boolean.
fn de_yes_no<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("\"yes\", \"no\" or a boolean")
        }
        fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
            Ok(b)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
            let s = s.trim();
            let is = |words: [&str; 4]| words.iter().any(|w| s.eq_ignore_ascii_case(w));
            if is(["yes", "true", "y", "1"]) {
                Ok(true)
            } else if s.is_empty() || is(["no", "false", "n", "0"]) {
                Ok(false)
            } else {
                let other = s.to_ascii_lowercase();
                Err(E::custom(format!(
                    "expected \"yes\" or \"no\", found \"{other}\""
                )))
            }
        }
    }
    d.deserialize_any(V)
}

/// A MAC as a string: none when blank or not a MAC (validation reports the
/// latter from the record as written).
fn de_mac<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MacAddr>, D::Error> {
    Ok(String::deserialize(d)?.parse().ok())
}

/// [`de_string_list`] of MACs; those that are not MACs are left out (and
/// reported by validation).
fn de_mac_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MacAddr>, D::Error> {
    Ok(de_string_list(d)?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect())
}

/// The items of a string list as the lab wrote it: a comma-separated string
/// or a list of strings, each trimmed, blanks dropped.
pub(crate) fn string_list_items(v: &serde_json::Value) -> Vec<&str> {
    let items: Vec<&str> = match v {
        serde_json::Value::String(s) => s.split(',').collect(),
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A comma-separated string or a list of strings; blanks dropped.
fn de_string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(text: &str) -> Result<Timing, String> {
        crate::LabConfig::parse(text)
            .map(|lab| lab.timing)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_are_read_as_seconds_and_written_back_so() {
        let t = timing(r#"{"ipmi_timeout": 2.5, "salt_timeout": 60, "ssh_probe_interval": 0.3}"#)
            .unwrap();
        assert_eq!(t.ipmi_timeout, Duration::from_millis(2500));
        assert_eq!(t.salt_timeout, Duration::from_secs(60));
        assert_eq!(t.ssh_probe_interval, Duration::from_millis(300));
        assert_eq!(t.data_life_time, Duration::from_secs(12 * 3600), "default");
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["ipmi_timeout"], 2.5);
        assert_eq!(back["ssh_probe_interval"], 0.3);
        assert_eq!(back["salt_timeout"], 60.0);
        assert_eq!(serde_json::from_value::<Timing>(back).unwrap(), t);
    }

    #[test]
    fn bad_durations_are_refused_naming_field_and_value() {
        let err = timing(r#"{"ipmi_timeout": -1}"#).unwrap_err();
        assert!(
            err.contains("field `ipmi_timeout` = \"-1\": not a duration in seconds: negative"),
            "{err}"
        );
        let err = timing("{\"data_life_time\": 1e300}").unwrap_err();
        assert!(err.contains("field `data_life_time` = \"1000"), "{err}");
        assert!(err.contains("too long (expected 0 to 315360000)"), "{err}");
        // The type errors of a plain number, as before.
        let err = timing(r#"{"salt_timeout": "60"}"#).unwrap_err();
        assert!(
            err.contains("invalid type: string \"60\", expected f64"),
            "{err}"
        );
        assert!(
            seconds("x", f64::NAN)
                .unwrap_err()
                .message
                .contains("not a number")
        );
        assert_eq!(seconds("x", 0.0).unwrap(), Duration::ZERO);
    }
}
