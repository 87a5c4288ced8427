//! The Pelagos lab config: one file describing the lab's nodes, their MACs,
//! addresses and BMCs, and the provisioning settings.
//!
//! ```
//! let lab = pelagos_config::LabConfig::parse(r#"{
//!     // comments and missing commas are fine (Hjson)
//!     "ipmi_user": "root"
//!     "nodes": [ { "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
//!                  "ip_type": "dynamic", "t_exclude": "no" } ]
//! }"#).unwrap();
//! assert!(lab.validate().is_empty());
//! assert_eq!(lab.node("n1.lab").unwrap().short_name(), "n1");
//! ```
//!
//! Loading is two steps: [`LabConfig::parse`] reads Hjson (JSON plus `#`, `//`
//! and `/* */` comments and optional line-end commas) into the typed model,
//! warning once per unknown key; [`LabConfig::validate`] checks the lab and
//! reports every problem at once. [`LabConfig::load`] does both.
//!
//! [`generate`] renders the service files of a lab (dnsmasq host records,
//! conman.conf, salt roster, teuthology SQL, udev rules) from overridable
//! templates; `make-cfgs` is its command line.

pub mod atomic;
pub mod generate;
mod load;
mod mac;
mod model;
mod secret;
mod validate;

pub use mac::{MacAddr, MacParseError};
pub use model::{IpType, LabConfig, Node, PxeSettings, SimSpec, Timing};
pub use secret::{MASK, Secret, redact};
pub use validate::{
    IPMI_PASS_MAX, IPMI_USER_MAX, Problem, SLS_NAME_ALLOWED, SLS_NAME_MAX, SLS_STATES_MAX,
    SlsError, check_sls_name, check_sls_names,
};

use std::path::{Path, PathBuf};

/// Why a lab config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read lab config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not Hjson/JSON; the message carries line and column.
    #[error("lab config {origin} is not valid JSON/Hjson: {message}")]
    Syntax { origin: String, message: String },
    /// Syntactically fine but a value has the wrong type.
    #[error("lab config {origin}: {message}")]
    Type { origin: String, message: String },
    #[error("lab config {origin} has {} problem(s):\n{}", problems.len(), validate::render(problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

impl LabConfig {
    /// Read, parse and validate a lab config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let lab = Self::read(path)?;
        let problems = lab.validate();
        if problems.is_empty() {
            Ok(lab)
        } else {
            Err(ConfigError::Invalid {
                origin: path.display().to_string(),
                problems,
            })
        }
    }

    /// Read and parse a lab config file without validating it, for a caller
    /// that validates next anyway ([`generate::render_all`] does).
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// Parse without validating (see [`LabConfig::validate`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_named(text, "<string>")
    }

    fn parse_named(text: &str, origin: &str) -> Result<Self, ConfigError> {
        load::parse(text, origin)
    }

    /// Every problem of the lab, each naming the node and field; empty when
    /// the lab is usable.
    pub fn validate(&self) -> Vec<Problem> {
        validate::validate(self)
    }

    /// The node of that exact name (as the original: no short-name or
    /// case-insensitive match, so `n1` and `n1.lab` stay distinct).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.node == name)
    }
}
