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
//!
//! // What make-cfgs writes: here dnsmasq's host records only.
//! use pelagos_config::generate::{self, Kind, Options};
//! let dir = tempfile::tempdir().unwrap();
//! let outputs = generate::render_all(&lab, &Options::only([Kind::Dnsmasq]), dir.path()).unwrap();
//! let written = generate::write_all(&outputs, dir.path()).unwrap();
//! let hosts = std::fs::read_to_string(&written[0]).unwrap();
//! assert!(hosts.contains("aa:bb:cc:dd:ee:01"), "{hosts}");
//! ```
//!
//! Loading is two steps: [`LabConfig::parse`] reads Hjson (JSON plus `#`, `//`
//! and `/* */` comments and optional line-end commas) into the typed model,
//! warning once per unknown key; [`LabConfig::validate`] checks the lab and
//! reports every problem at once. [`LabConfig::load`] does both and refuses
//! a lab with any problem (make-cfgs: the files it writes must be accepted
//! by dnsmasq and conmand). [`LabConfig::load_serving`] is the server's: it
//! refuses a lab only for a lab-wide problem ([`Scope::Lab`]) and disables
//! a node with problems of its own ([`LabConfig::disable_bad_nodes`]).
//!
//! [`generate`] renders the service files of a lab (dnsmasq host records,
//! conman.conf, salt roster, teuthology SQL, udev rules) from overridable
//! templates; `make-cfgs` is its command line.

#![deny(missing_docs)]

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
    IPMI_PASS_MAX, IPMI_USER_MAX, Problem, SLS_NAME_ALLOWED, SLS_NAME_MAX, SLS_STATES_MAX, Scope,
    SlsError, check_sls_name, check_sls_names,
};

use std::path::{Path, PathBuf};

/// Why a lab config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read lab config {path}: {source}")]
    Read {
        /// The lab config file, as given to [`LabConfig::read`].
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// Not Hjson/JSON; the message carries line and column.
    #[error("lab config {origin} is not valid JSON/Hjson: {message}")]
    Syntax {
        /// Where the text came from: the file's path, or `<string>` for
        /// [`LabConfig::parse`].
        origin: String,
        /// The Hjson parser's report, with line and column.
        message: String,
    },
    /// Syntactically fine but a value has the wrong type.
    #[error("lab config {origin}: {message}")]
    Type {
        /// Where the text came from, as in [`ConfigError::Syntax`].
        origin: String,
        /// serde's report, naming the expected and the found type (and,
        /// for a timing value out of range, the field and value).
        message: String,
    },
    /// Read and parsed, but validation found problems: any problem for
    /// [`LabConfig::load`], at least one lab-wide one for
    /// [`LabConfig::load_serving`].
    #[error("lab config {origin} has {} problem(s):\n{}", problems.len(), validate::render(problems))]
    Invalid {
        /// The file's path.
        origin: String,
        /// Every problem found, in report order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The problems found, each naming node, field and value: those of
    /// [`ConfigError::Invalid`], else one lab-wide problem saying why the
    /// file could not be read or parsed.
    pub fn problems(&self) -> Vec<Problem> {
        let whole = |field: &str, message: String| {
            vec![Problem {
                node: None,
                field: field.to_owned(),
                value: String::new(),
                message,
                scope: Scope::Lab,
            }]
        };
        match self {
            ConfigError::Invalid { problems, .. } => problems.clone(),
            ConfigError::Read { source, .. } => {
                whole("", format!("cannot read the file: {source}"))
            }
            ConfigError::Syntax { message, .. } => {
                whole("", format!("not valid JSON/Hjson: {message}"))
            }
            ConfigError::Type { message, .. } => whole("", message.clone()),
        }
    }
}

impl LabConfig {
    /// Read, parse and validate a lab config file: every problem, lab-wide
    /// or of one node, refuses it (make-cfgs' rule).
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

    /// Read, parse and validate a lab config file as the server serves it:
    /// refused only for a lab-wide problem ([`Scope::Lab`]; the error
    /// lists every problem, lab-wide ones and those of single nodes), else
    /// loaded with each node that has problems of its own disabled
    /// ([`LabConfig::disable_bad_nodes`]).
    pub fn load_serving(path: &Path) -> Result<Self, ConfigError> {
        let mut lab = Self::read(path)?;
        lab.disable_bad_nodes()
            .map_err(|problems| ConfigError::Invalid {
                origin: path.display().to_string(),
                problems,
            })?;
        Ok(lab)
    }

    /// Validate, and unless a problem is lab-wide, set each node's
    /// [`Node::problems`] to its own problems (a node with none is usable).
    /// `Err`: every problem (in report order) when one is lab-wide; the
    /// nodes are then left as they were.
    pub fn disable_bad_nodes(&mut self) -> Result<(), Vec<Problem>> {
        let problems = self.validate();
        if problems.iter().any(|p| p.scope == Scope::Lab) {
            return Err(problems);
        }
        let index: std::collections::HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.node.as_str(), i))
            .collect();
        let mut of_node: Vec<Vec<Problem>> = vec![Vec::new(); self.nodes.len()];
        for p in problems {
            // A node problem names the node, or `#<index>` when it has no name.
            let who = p.node.as_deref().unwrap_or_default();
            let i = index.get(who).copied().or_else(|| {
                who.strip_prefix('#')
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|&i| self.nodes.get(i).is_some_and(|n| n.node.is_empty()))
            });
            if let Some(i) = i {
                of_node[i].push(p);
            }
        }
        for (node, problems) in self.nodes.iter_mut().zip(of_node) {
            node.problems = problems;
        }
        Ok(())
    }

    /// The nodes a lab config disabled ([`Node::is_disabled`]).
    pub fn disabled_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_disabled())
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
