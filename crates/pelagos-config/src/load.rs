//! Reading a lab config's text into the model. Strict JSON goes straight
//! into the typed structs; anything else (Hjson, or a file with an error to
//! report) through a [`serde_json::Value`] of the whole document.

use crate::ConfigError;
use crate::model::{LabConfig, Node};
use crate::validate::{Problem, Scope};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

pub(crate) fn parse(text: &str, origin: &str) -> Result<LabConfig, ConfigError> {
    let file = match serde_json::from_str::<LabFile>(text) {
        Ok(file) => file,
        Err(_) => parse_slowly(text, origin)?,
    };
    // Unknown keys keep working (a newer or older file) but are named once each.
    for key in &file.unknown_keys {
        tracing::warn!(config = origin, key = %key, "unknown key in lab config, ignored");
    }
    Ok(file.lab)
}

/// Hjson (comments, missing commas), and the errors: a syntax error from
/// the Hjson parser, with line and column; a type error from the model.
fn parse_slowly(text: &str, origin: &str) -> Result<LabFile, ConfigError> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => deser_hjson::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?,
    };
    LabFile::deserialize(&value).map_err(|e| ConfigError::Type {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// A lab config as read: the model, and the keys it does not know
/// (`color`, `nodes[].rack`).
struct LabFile {
    lab: LabConfig,
    unknown_keys: BTreeSet<String>,
}

impl<'de> Deserialize<'de> for LabFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(LabFileVisitor)
    }
}

struct LabFileVisitor;

impl<'de> Visitor<'de> for LabFileVisitor {
    type Value = LabFile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a lab config object")
    }

    /// The nodes are read one by one into the model; the few other keys
    /// through a map, since `LabConfig` flattens `Timing` (serde would copy a
    /// flattened struct's whole input, nodes included, into a buffer first).
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabFile, A::Error> {
        let mut top = Map::new();
        let mut nodes = Nodes::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "nodes" {
                // As in a JSON object: a repeated key, the last one wins.
                nodes = map.next_value()?;
            } else {
                top.insert(key, map.next_value()?);
            }
        }
        let top = Value::Object(top);
        let mut lab = LabConfig::deserialize(&top).map_err(de::Error::custom)?;
        // `LabConfig` writes every key it reads (Timing's flattened).
        let known = serde_json::to_value(&lab).map_err(de::Error::custom)?;
        let mut unknown_keys: BTreeSet<String> = top
            .as_object()
            .into_iter()
            .flat_map(Map::keys)
            .filter(|k| known.get(k.as_str()).is_none())
            .cloned()
            .collect();
        unknown_keys.extend(nodes.unknown_keys);
        lab.nodes = nodes.list;
        Ok(LabFile { lab, unknown_keys })
    }
}

/// The `nodes` array: each node typed, with its record as written
/// ([`Node::raw`]).
#[derive(Default)]
struct Nodes {
    list: Vec<Node>,
    /// `nodes[].<key>` of every key no node field reads.
    unknown_keys: BTreeSet<String>,
}

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(NodesVisitor)
    }
}

struct NodesVisitor;

impl<'de> Visitor<'de> for NodesVisitor {
    type Value = Nodes;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of nodes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nodes, A::Error> {
        let fields = struct_fields::<Node>();
        let mut nodes = Nodes {
            list: Vec::with_capacity(seq.size_hint().unwrap_or(0)),
            unknown_keys: BTreeSet::new(),
        };
        let mut entries = Vec::new();
        while let Some(raw) = seq.next_element_seed(SizedMap(&mut entries))? {
            let index = nodes.list.len();
            let mut node = Node::deserialize(&raw).unwrap_or_else(|e| unreadable(&raw, index, &e));
            for key in raw.keys().filter(|k| !fields.contains(&k.as_str())) {
                nodes.unknown_keys.insert(format!("nodes[].{key}"));
            }
            node.raw = raw;
            nodes.list.push(node);
        }
        Ok(nodes)
    }
}

/// A node whose record has a value of the wrong type (`"bmc_port": "x"`,
/// `"uefi": "maybe"`, no `node`): read with defaults, its name kept when
/// it has one, and the problem kept for validation, which reports it
/// against the node only (the server disables that node, make-cfgs
/// refuses the lab). The field is the one whose removal makes the record
/// readable, else the one serde names missing.
fn unreadable(raw: &Map<String, Value>, index: usize, e: &serde_json::Error) -> Node {
    let name = raw.get("node").and_then(Value::as_str).unwrap_or_default();
    let mut node = Node::deserialize(&serde_json::json!({ "node": name }))
        .expect("a record with only a name reads");
    let culprit = raw.keys().find(|key| {
        let mut without = raw.clone();
        without.remove(key.as_str());
        Node::deserialize(&without).is_ok()
    });
    let message = e.to_string();
    let field = match culprit {
        Some(key) => key.clone(),
        None => message
            .split('`')
            .nth(1)
            .filter(|_| message.starts_with("missing field"))
            .unwrap_or_default()
            .to_owned(),
    };
    let value = raw
        .get(&field)
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        })
        .unwrap_or_default();
    node.read_problems.push(Problem {
        node: Some(if name.is_empty() {
            format!("#{index}")
        } else {
            name.to_owned()
        }),
        field,
        value,
        message,
        scope: Scope::Node,
    });
    node
}

/// A node's record as a map allocated at its final size, its entries first
/// gathered in a reused buffer (serde_json's own map grows key by key: for
/// 10,000 nodes that is many more allocations and a third more memory).
struct SizedMap<'b>(&'b mut Vec<(String, Value)>);

impl<'de> DeserializeSeed<'de> for SizedMap<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SizedMap<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a node object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        self.0.clear();
        while let Some(key) = map.next_key::<String>()? {
            self.0.push((key, map.next_value()?));
        }
        let mut sized = Map::with_capacity(self.0.len());
        // As `Map::insert`: a repeated key keeps its place, the last value wins.
        sized.extend(self.0.drain(..));
        Ok(sized)
    }
}

/// The keys a struct's derived `Deserialize` reads: serde hands them to
/// `deserialize_struct`, where this deserializer stops.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields read"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_fields_are_the_struct_fields() {
        let fields = struct_fields::<Node>();
        assert!(
            fields.contains(&"node") && fields.contains(&"sim"),
            "{fields:?}"
        );
        assert!(!fields.contains(&"raw"), "{fields:?}");
    }

    /// Strict JSON (typed at once) and the same lab through a `Value` (the
    /// Hjson path) give the same model and the same unknown keys.
    #[test]
    fn fast_and_slow_paths_agree() {
        let text = r#"{"color": 1, "ipmi_retries": 5, "pxe": {"bios_opts": "x"},
            "nodes": [{"node": "a", "rack": 1, "uefi": "yes", "hsm_mac": "aa:bb:cc:dd:ee:01"},
                      {"node": "b", "sim": {"bmc_error": true}}], "domain": "d"}"#;
        let fast: LabFile = serde_json::from_str(text).unwrap();
        let slow = parse_slowly(text, "t").unwrap();
        assert_eq!(fast.unknown_keys, slow.unknown_keys);
        assert_eq!(
            fast.unknown_keys.iter().collect::<Vec<_>>(),
            ["color", "nodes[].rack"]
        );
        assert_eq!(fast.lab.nodes, slow.lab.nodes);
        assert_eq!(fast.lab.timing, slow.lab.timing);
        assert_eq!(fast.lab.pxe, slow.lab.pxe);
        assert_eq!(fast.lab.domain, "d");
        // A repeated key: the last one wins, as in a JSON object.
        let twice = r#"{"nodes": [{"node": "a"}], "nodes": [{"node": "b"}]}"#;
        let lab = parse(twice, "t").unwrap();
        assert_eq!(lab.nodes.len(), 1);
        assert_eq!(lab.nodes[0].node, "b");
    }
}
