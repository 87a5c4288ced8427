//! The typed lab config. Field names are the original's JSON keys; every
//! setting the original did not have carries a default, so old files load.

use crate::secret::Secret;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::PathBuf;

/// The whole lab: global settings plus the nodes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabConfig {
    #[serde(default)]
    pub ipmi_user: String,
    #[serde(default)]
    pub ipmi_pass: Secret,
    #[serde(default)]
    pub target_node_password: Secret,
    #[serde(default)]
    pub maintenance_image_kernel: String,
    #[serde(default)]
    pub maintenance_image_initrd: String,
    /// Address of the provisioning host as nodes see it (TFTP/HTTP server).
    #[serde(default)]
    pub default_pxe_server: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default = "default_roster_file")]
    pub roster_file: String,
    #[serde(default)]
    pub salt_cfg_dir: String,
    /// Salt states applied after every OS install. The original wrote them as
    /// one comma-separated string; a JSON list is accepted too.
    #[serde(default, deserialize_with = "de_string_list")]
    pub sls_list: Vec<String>,
    /// Where conmand writes `console.<short name>` logs.
    #[serde(default = "default_conman_log_dir")]
    pub conman_log_dir: PathBuf,
    #[serde(default, flatten)]
    pub timing: Timing,
    #[serde(default)]
    pub pxe: PxeSettings,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

/// Timeouts and retry knobs of a provision, in seconds unless named otherwise.
/// Defaults are the original's.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Timing {
    /// Overall wait for a node to become ready after power-on.
    pub wait_node_ready_timeout: f64,
    /// Time a node needs before its console says anything meaningful.
    pub hardware_start_delay: f64,
    /// A console whose last meaningful line is older than this is stalled.
    pub conman_line_max_age: f64,
    pub max_cold_restart: u32,
    /// Time between power off and power on in a cold restart.
    pub cold_restart_delay: f64,
    /// Interval between SSH readiness probes.
    pub ssh_probe_interval: f64,
    /// Timeout of one SSH probe (connect, banner, key exchange).
    pub ssh_probe_timeout: f64,
    /// Timeout of one BMC command.
    pub ipmi_timeout: f64,
    /// Attempts of one BMC command before it fails.
    pub ipmi_retries: u32,
    /// Timeout of one salt state run.
    pub salt_timeout: f64,
    /// How long finished tasks and their logs are kept.
    pub data_life_time: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            wait_node_ready_timeout: 900.0,
            hardware_start_delay: 30.0,
            conman_line_max_age: 180.0,
            max_cold_restart: 3,
            cold_restart_delay: 30.0,
            ssh_probe_interval: 5.0,
            ssh_probe_timeout: 5.0,
            ipmi_timeout: 20.0,
            ipmi_retries: 3,
            salt_timeout: 1800.0,
            data_life_time: 12.0 * 3600.0,
        }
    }
}

/// What goes into boot records besides the node and the OS.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct PxeSettings {
    pub console_opts: String,
    pub bios_opts: String,
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot_node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(default)]
    pub ip_type: IpType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bmc_mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bmc_ip: String,
    #[serde(default)]
    pub bmc_ip_type: IpType,
    /// Port of the BMC's RMCP+ service.
    #[serde(default = "default_bmc_port")]
    pub bmc_port: u16,
    /// IPMI cipher suite; ipmitool's default (17) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<u8>,
    /// MACs of the high-speed NICs: one string or a list.
    #[serde(
        default,
        deserialize_with = "de_string_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hsm_mac: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hsm_ip: String,
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
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub t_machine_type: String,
    /// teuthology `arch` column.
    #[serde(default = "default_t_arch")]
    pub t_arch: String,
    /// Left out of the teuthology SQL.
    #[serde(default, deserialize_with = "de_yes_no")]
    pub t_exclude: bool,
    #[serde(default, deserialize_with = "de_yes_no")]
    pub provision_need_reboot: bool,
    /// Failure injection for the simulated lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimSpec>,
    /// The record as the lab config wrote it: what the REST API shows, so
    /// clients see the same keys and values as with the original.
    #[serde(skip)]
    pub raw: serde_json::Map<String, serde_json::Value>,
}

impl Node {
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

    /// MAC lower-case with dashes, as in `pxelinux.cfg/01-<mac>`.
    pub fn mac_dashed(&self) -> String {
        self.mac.to_ascii_lowercase().replace(':', "-")
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
    Dynamic,
    Static,
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
    /// Salt states fail.
    pub salt_error: bool,
    /// Boot time in seconds, overriding the simulation mode's.
    pub boot_time: Option<f64>,
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
