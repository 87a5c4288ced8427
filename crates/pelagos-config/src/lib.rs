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
mod model;
mod secret;
mod validate;

pub use model::{IpType, LabConfig, Node, PxeSettings, SimSpec, Timing};
pub use secret::Secret;
pub use validate::{
    IPMI_PASS_MAX, IPMI_USER_MAX, Problem, SLS_NAME_ALLOWED, SLS_NAME_MAX, SLS_STATES_MAX,
    SlsError, check_sls_name, check_sls_names,
};

use serde::Deserialize;
use std::collections::BTreeSet;
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let origin = path.display().to_string();
        let lab = Self::parse_named(&text, &origin)?;
        let problems = lab.validate();
        if problems.is_empty() {
            Ok(lab)
        } else {
            Err(ConfigError::Invalid { origin, problems })
        }
    }

    /// Parse without validating (see [`LabConfig::validate`]).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_named(text, "<string>")
    }

    fn parse_named(text: &str, origin: &str) -> Result<Self, ConfigError> {
        // Strict JSON through serde_json is several times faster than the
        // Hjson parser; Hjson (comments, missing commas) is the fallback and
        // gives the error message, with line and column, when both fail.
        let parsed = match json_value_split(text) {
            Some(v) => Ok(v),
            None => json_value(text),
        };
        let mut value: serde_json::Value = match parsed {
            Ok(v) => v,
            Err(_) => deser_hjson::from_str(text).map_err(|e| ConfigError::Syntax {
                origin: origin.to_owned(),
                message: e.to_string(),
            })?,
        };
        warn_unknown_keys(&value, origin);
        let type_error = |e: serde_json::Error| ConfigError::Type {
            origin: origin.to_owned(),
            message: e.to_string(),
        };
        // The nodes are deserialized on their own: through `LabConfig` (which
        // flattens `Timing`) serde would first copy the whole array into its
        // buffer, which costs as much as parsing it.
        let raw_nodes = value.as_object_mut().and_then(|o| o.remove("nodes"));
        let mut lab = LabConfig::deserialize(&value).map_err(type_error)?;
        match raw_nodes {
            Some(serde_json::Value::Array(raw_nodes)) => {
                lab.nodes = Vec::with_capacity(raw_nodes.len());
                for raw in raw_nodes {
                    let mut node = Node::deserialize(&raw).map_err(type_error)?;
                    if let serde_json::Value::Object(obj) = raw {
                        node.raw = obj;
                    }
                    lab.nodes.push(node);
                }
            }
            Some(other) => {
                lab.nodes = Vec::<Node>::deserialize(&other).map_err(type_error)?;
            }
            None => {}
        }
        Ok(lab)
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

/// `serde_json::from_str::<serde_json::Value>`, but each object's map is
/// allocated once at its final size (serde_json grows it key by key: for a
/// 10,000-node lab that is most of the parse time and memory).
fn json_value(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = SizedValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Texts from this size parse their `nodes` array in two halves on two threads.
const SPLIT_FROM: usize = 256 * 1024;

/// [`json_value`] of a big strict-JSON lab, its `nodes` array parsed in two
/// halves on two threads. `None` when the text is small, is not strict JSON
/// or not shaped `{..., "nodes": [...], ...}` (the caller then parses it whole,
/// which also gives the error).
fn json_value_split(text: &str) -> Option<serde_json::Value> {
    if text.len() < SPLIT_FROM {
        return None;
    }
    json_value_halves(text)
}

fn json_value_halves(text: &str) -> Option<serde_json::Value> {
    let (open, mid, close) = nodes_split_points(text.as_bytes())?;
    let top = format!("{}[]{}", &text[..open], &text[close + 1..]);
    let first = format!("{}]", &text[open..mid]);
    let second = format!("[{}", &text[mid + 1..=close]);
    let (top, first, second) = std::thread::scope(|s| {
        let helper = s.spawn(|| json_value(&second).ok());
        let top = json_value(&top).ok();
        let first = json_value(&first).ok();
        let second = helper.join().ok().flatten();
        (top, first, second)
    });
    let (mut top, serde_json::Value::Array(mut nodes), serde_json::Value::Array(second)) =
        (top?, first?, second?)
    else {
        return None;
    };
    if nodes.is_empty() || second.is_empty() {
        // `[, 1]` or `[1, ]`: not strict JSON.
        return None;
    }
    nodes.extend(second);
    *top.get_mut("nodes")? = serde_json::Value::Array(nodes);
    Some(top)
}

/// In `{..., "nodes": [e1, e2, ...], ...}`: the offsets of the array's `[`,
/// of the comma between its elements nearest the middle, and of its `]`.
/// `None` when the top level is not such an object, names `nodes` more than
/// once or with an escape, or the array has fewer than two elements.
fn nodes_split_points(b: &[u8]) -> Option<(usize, usize, usize)> {
    let (mut depth, mut i) = (0usize, 0usize);
    let mut expect_key = false;
    let mut key_is_nodes = false;
    let (mut open, mut close) = (None, None);
    let mut commas = Vec::new();
    while i < b.len() {
        match b[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                let mut escaped = false;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        escaped = true;
                        i += 1;
                    }
                    i += 1;
                }
                if depth == 1 && expect_key {
                    let key = b.get(start..i)?;
                    if escaped && key.contains(&b'\\') {
                        // An escaped key might spell `nodes`: not worth decoding.
                        return None;
                    }
                    key_is_nodes = key == b"nodes";
                    if key_is_nodes && open.is_some() {
                        // A second `nodes`: the last one counts, parse it whole.
                        return None;
                    }
                    expect_key = false;
                }
            }
            b'{' | b'[' => {
                if depth == 1 && key_is_nodes {
                    if b[i] != b'[' || open.is_some() {
                        return None;
                    }
                    open = Some(i);
                }
                if depth == 0 && b[i] != b'{' {
                    return None;
                }
                depth += 1;
                expect_key = b[i] == b'{' && depth == 1;
            }
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 1 && open.is_some() && close.is_none() && b[i] == b']' {
                    close = Some(i);
                }
                if depth == 1 {
                    key_is_nodes = false;
                }
            }
            b',' => {
                if depth == 1 {
                    expect_key = true;
                    key_is_nodes = false;
                } else if depth == 2 && open.is_some() && close.is_none() {
                    commas.push(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    let (open, close) = (open?, close?);
    let mid = *commas.get(commas.len() / 2)?;
    Some((open, mid, close))
}

/// Deserializes a [`serde_json::Value`] like its own `Deserialize`, with
/// objects built at their final size.
#[derive(Clone, Copy)]
struct SizedValue;

impl<'de> serde::de::DeserializeSeed<'de> for SizedValue {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SizedValue {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(e) = seq.next_element_seed(self)? {
            v.push(e);
        }
        Ok(serde_json::Value::Array(v))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, serde_json::Value)> = Vec::with_capacity(16);
        while let Some(k) = map.next_key::<String>()? {
            entries.push((k, map.next_value_seed(self)?));
        }
        let mut m = serde_json::Map::with_capacity(entries.len());
        for (k, v) in entries {
            // As serde_json: a repeated key keeps its place, the last value wins.
            m.insert(k, v);
        }
        Ok(serde_json::Value::Object(m))
    }
}

const TOP_KEYS: &[&str] = &[
    "ipmi_user",
    "ipmi_pass",
    "target_node_password",
    "maintenance_image_kernel",
    "maintenance_image_initrd",
    "default_pxe_server",
    "domain",
    "roster_file",
    "salt_cfg_dir",
    "sls_list",
    "conman_log_dir",
    "wait_node_ready_timeout",
    "hardware_start_delay",
    "conman_line_max_age",
    "max_cold_restart",
    "cold_restart_delay",
    "ssh_probe_interval",
    "ssh_probe_timeout",
    "ipmi_timeout",
    "ipmi_retries",
    "salt_timeout",
    "data_life_time",
    "pxe",
    "nodes",
];

const NODE_KEYS: &[&str] = &[
    "node",
    "boot_node",
    "mac",
    "ip",
    "ip_type",
    "bmc_mac",
    "bmc_ip",
    "bmc_ip_type",
    "bmc_port",
    "cipher_suite",
    "hsm_mac",
    "hsm_ip",
    "hsm_ip_type",
    "boot_ip",
    "ssh_port",
    "uefi",
    "console_dev",
    "role",
    "comment",
    "t_machine_type",
    "t_arch",
    "t_exclude",
    "provision_need_reboot",
    "sim",
];

/// Unknown keys keep working (a newer or older file) but are named once each.
fn warn_unknown_keys(value: &serde_json::Value, origin: &str) {
    let mut seen = BTreeSet::new();
    if let Some(top) = value.as_object() {
        for k in top.keys().filter(|k| !TOP_KEYS.contains(&k.as_str())) {
            seen.insert(k.clone());
        }
        for node in top
            .get("nodes")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            for k in node.as_object().into_iter().flat_map(|o| o.keys()) {
                if !NODE_KEYS.contains(&k.as_str()) {
                    seen.insert(format!("nodes[].{k}"));
                }
            }
        }
    }
    for k in seen {
        tracing::warn!(config = origin, key = %k, "unknown key in lab config, ignored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-halves parse gives exactly the whole parse, or declines.
    #[test]
    fn split_parse_equals_whole_parse_or_declines() {
        let same = [
            r#"{"a": "x,[]{}\"", "nodes": [{"node": "a,]", "hsm_mac": ["1", "2"]}, {"node": "b\"]"}, 3], "z": [1, [2]]}"#,
            r#"{"pxe": {"nodes": [1, 2]}, "nodes": [{"n": {"x": [1, {"y": ","}]}}, {"n": 2}, {"n": 3}]}"#,
            r#"{"nodes": null, "nodes": [1, 2, 3]}"#,
            r#" { "nodes" : [ 1 , 2 ] } "#,
        ];
        for text in same {
            let whole = json_value(text).unwrap();
            assert_eq!(json_value_halves(text), Some(whole), "{text}");
        }
        let declined = [
            r#"{"nodes": [1, 2], "nodes": null}"#,
            r#"{"node\u0073": [1, 2]}"#,
            r#"{"nodes": [1]}"#,
            r#"{"nodes": {"a": 1, "b": 2}}"#,
            r#"[{"nodes": [1, 2]}]"#,
            r#"{"nodes": [1, 2]} x"#,
            r#"{"nodes": [1, 2,]}"#,
            r#"{"nodes": [, 1]}"#,
            r#"{"nodes": [1 , , 2]}"#,
        ];
        for text in declined {
            assert_eq!(json_value_halves(text), None, "{text}");
        }
    }
}
