//! The salt-ssh roster, read back by a YAML parser.

use crate::common::demo_lab;
use pelagos_config::LabConfig;
use pelagos_config::generate::{self, Kind, Options};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(serde::Deserialize, Debug)]
struct Target {
    host: String,
    user: String,
    port: Option<u16>,
}

fn roster(lab: &LabConfig) -> BTreeMap<String, Target> {
    let out = generate::render_all(
        lab,
        &Options::only([Kind::Roster]),
        Path::new("/nonexistent"),
    )
    .unwrap()
    .remove(0);
    serde_norway::from_str(&out.contents)
        .unwrap_or_else(|e| panic!("roster is not YAML: {e}\n{}", out.contents))
}

#[test]
fn roster_lists_every_node_with_its_host() {
    let lab = demo_lab();
    let r = roster(&lab);
    assert_eq!(r.len(), lab.nodes.len());
    for n in &lab.nodes {
        let t = &r[&n.node];
        assert_eq!(t.host, n.ip, "{}", n.node);
        assert_eq!(t.user, "root");
        assert_eq!(t.port, None);
    }
}

#[test]
fn names_yaml_would_retype_stay_strings() {
    // Unquoted, these keys would read as a boolean, null, a number and a float.
    let lab = LabConfig::parse(
        r#"{ "nodes": [
            { "node": "yes", "ip": "10.0.0.1" },
            { "node": "null", "ip": "10.0.0.2" },
            { "node": "0123", "ip": "10.0.0.3", "ssh_port": 2222 },
            { "node": "1e3", "ip": "10.0.0.4", "boot_ip": "10.9.0.4" },
            { "node": "noaddr" } ] }"#,
    )
    .unwrap();
    assert_eq!(lab.validate(), []);
    let r = roster(&lab);
    assert_eq!(r.keys().collect::<Vec<_>>(), ["0123", "1e3", "null", "yes"]);
    assert_eq!(r["0123"].port, Some(2222));
    // The provision address (boot_ip) is where salt reaches the node.
    assert_eq!(r["1e3"].host, "10.9.0.4");
}
