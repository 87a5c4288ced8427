//! One test per validation rule: each problem names the node and the field,
//! and every problem of a lab is reported at once.

use pelagos_config::{ConfigError, LabConfig, Problem};
use rstest::rstest;

/// A valid first node and `second`, as JSON text.
fn lab_with(second: &str) -> LabConfig {
    let text = format!(
        r#"{{ "nodes": [
            {{ "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "ip_type": "dynamic",
               "bmc_mac": "aa:bb:cc:dd:ff:01", "bmc_ip": "10.0.1.1", "bmc_ip_type": "dynamic" }},
            {second}
        ] }}"#
    );
    LabConfig::parse(&text).unwrap()
}

const GOOD2: &str = r#"{ "node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2", "ip_type": "dynamic",
    "bmc_mac": "aa:bb:cc:dd:ff:02", "bmc_ip": "10.0.1.2", "bmc_ip_type": "dynamic" }"#;

fn one_problem(lab: &LabConfig) -> Problem {
    let problems = lab.validate();
    assert_eq!(problems.len(), 1, "expected one problem: {problems:#?}");
    problems.into_iter().next().unwrap()
}

#[test]
fn the_base_lab_is_valid() {
    assert_eq!(lab_with(GOOD2).validate(), []);
}

#[rstest]
#[case::malformed_mac(r#""mac": "aa:bb:cc:dd:ee""#, "n2.lab", "mac", "not a MAC")]
#[case::malformed_bmc_mac(r#""bmc_mac": "zz:bb:cc:dd:ff:02""#, "n2.lab", "bmc_mac", "not a MAC")]
#[case::malformed_hsm_mac(
    r#""hsm_mac": ["aa:bb:cc:dd:99:01", "nope"]"#,
    "n2.lab",
    "hsm_mac[1]",
    "not a MAC"
)]
#[case::malformed_ip(r#""ip": "10.0.0.256""#, "n2.lab", "ip", "not an IPv4")]
#[case::malformed_bmc_ip(r#""bmc_ip": "10.0.1""#, "n2.lab", "bmc_ip", "not an IPv4")]
#[case::malformed_boot_ip(r#""boot_ip": "host.example""#, "n2.lab", "boot_ip", "not an IPv4")]
#[case::duplicate_name(
    r#""node": "n1.lab""#,
    "n1.lab",
    "node",
    "already used by node [n1.lab]"
)]
#[case::duplicate_short_name(
    r#""node": "n1.other""#,
    "n1.other",
    "node",
    "already used by node [n1.lab]"
)]
#[case::duplicate_mac(
    r#""mac": "AA:BB:CC:DD:EE:01""#,
    "n2.lab",
    "mac",
    "already used by node [n1.lab]"
)]
#[case::duplicate_mac_across_fields(
    r#""bmc_mac": "aa:bb:cc:dd:ee:01""#,
    "n2.lab",
    "bmc_mac",
    "already used by node [n1.lab]"
)]
#[case::duplicate_ip(r#""ip": "10.0.0.1""#, "n2.lab", "ip", "already used by node [n1.lab]")]
#[case::duplicate_bmc_ip(
    r#""bmc_ip": "10.0.1.1""#,
    "n2.lab",
    "bmc_ip",
    "already used by node [n1.lab]"
)]
#[case::dynamic_without_mac(r#""mac": """#, "n2.lab", "mac", "required because ip_type is dynamic")]
#[case::dynamic_without_ip(r#""ip": """#, "n2.lab", "ip", "required because ip_type is dynamic")]
#[case::dynamic_bmc_without_mac(
    r#""bmc_mac": """#,
    "n2.lab",
    "bmc_mac",
    "required because bmc_ip_type is dynamic"
)]
#[case::dynamic_hsm_without_ip(
    r#""hsm_ip_type": "dynamic", "hsm_mac": "aa:bb:cc:dd:99:02""#,
    "n2.lab",
    "hsm_ip",
    "required because hsm_ip_type is dynamic"
)]
#[case::unknown_ip_type(r#""ip_type": "dhcp""#, "n2.lab", "ip_type", "unknown address type")]
#[case::unknown_bmc_ip_type(
    r#""bmc_ip_type": "Dynamic""#,
    "n2.lab",
    "bmc_ip_type",
    "unknown address type"
)]
#[case::unknown_hsm_ip_type(
    r#""hsm_ip_type": "auto""#,
    "n2.lab",
    "hsm_ip_type",
    "unknown address type"
)]
#[case::name_with_comma(r#""node": "n2,lab""#, "n2,lab", "node", "may only contain")]
fn each_rule_names_node_and_field(
    #[case] patch: &str,
    #[case] node: &str,
    #[case] field: &str,
    #[case] message: &str,
) {
    // One change to the good second node: the patch's keys replace its own.
    let mut second: serde_json::Value = serde_json::from_str(GOOD2).unwrap();
    let changes: serde_json::Value = serde_json::from_str(&format!("{{{patch}}}")).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        second[k] = v.clone();
    }
    let second = second.to_string();
    let p = one_problem(&lab_with(&second));
    assert_eq!(p.node.as_deref(), Some(node), "{p}");
    assert_eq!(p.field, field, "{p}");
    assert!(p.message.contains(message), "{p}");
    let shown = p.to_string();
    assert!(
        shown.contains(&format!("[{node}]")) && shown.contains(field),
        "{shown}"
    );
}

#[test]
fn a_lab_without_nodes_is_reported() {
    let p = one_problem(&LabConfig::parse(r#"{ "nodes": [] }"#).unwrap());
    assert_eq!((p.node, p.field.as_str()), (None, "nodes"));
    let p = one_problem(&LabConfig::parse(r#"{ "domain": "x" }"#).unwrap());
    assert_eq!(p.field, "nodes");
}

#[test]
fn a_node_without_a_name_is_named_by_index() {
    let p = one_problem(&lab_with(r#"{ "node": "" }"#));
    assert_eq!(p.node.as_deref(), Some("#1"));
    assert_eq!(p.field, "node");
}

#[test]
fn every_problem_is_reported_at_once() {
    let lab = lab_with(
        r#"{ "node": "n1.lab", "mac": "bad", "ip": "10.0.0.1", "ip_type": "dynamic",
             "bmc_ip": "300.1.1.1", "bmc_ip_type": "dynamic", "hsm_ip_type": "fast" }"#,
    );
    let problems = lab.validate();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for f in ["mac", "bmc_ip", "bmc_mac", "hsm_ip_type", "node", "ip"] {
        assert!(fields.contains(&f), "no problem for {f}: {problems:#?}");
    }
    // The duplicate name is reported once, not again as a duplicate short name.
    assert_eq!(
        fields.iter().filter(|f| **f == "node").count(),
        1,
        "{problems:#?}"
    );
}

#[test]
fn load_refuses_an_invalid_lab_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    std::fs::write(
        &path,
        r#"{ "nodes": [ { "node": "a", "mac": "x", "ip_type": "dynamic" },
                        { "node": "b", "ip": "1.2.3" } ] }"#,
    )
    .unwrap();
    let err = LabConfig::load(&path).unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let text = err.to_string();
    assert!(
        text.contains("lab.json") && text.contains("3 problem"),
        "{text}"
    );
    assert!(text.contains("node [a] field `mac` = \"x\""), "{text}");
    assert!(text.contains("node [b] field `ip` = \"1.2.3\""), "{text}");
}

#[test]
fn ten_thousand_nodes_validate() {
    let lab = LabConfig::parse(&crate::common::big_lab_json(10_000)).unwrap();
    assert_eq!(lab.validate(), []);
}

/// `lab_with(GOOD2)` with top-level keys added.
fn lab_with_globals(globals: &str) -> LabConfig {
    let text = format!(r#"{{ {globals}, "nodes": [ {GOOD2} ] }}"#);
    LabConfig::parse(&text).unwrap()
}

#[test]
fn over_long_ipmi_credentials_are_reported_without_the_password() {
    // IPMI v2: ipmitool refuses a user over 16 bytes and a password over 20.
    let ok =
        lab_with_globals(r#""ipmi_user": "user-of-16-bytes", "ipmi_pass": "password-of-20-bytes""#);
    assert_eq!(ok.validate(), []);

    let secret = "Pw-21-bytes-long-xyz!";
    let lab = lab_with_globals(&format!(r#""ipmi_user": "admin", "ipmi_pass": "{secret}""#));
    let p = one_problem(&lab);
    assert_eq!((p.node.as_deref(), p.field.as_str()), (None, "ipmi_pass"));
    let shown = format!("{p} {p:?}");
    assert!(!shown.contains(secret), "password shown: {shown}");
    assert!(
        shown.contains("21 bytes") && shown.contains("20"),
        "{shown}"
    );

    // Multi-byte characters count in bytes, as ipmitool counts them.
    let lab = lab_with_globals(r#""ipmi_pass": "ééééééééééé""#);
    assert!(one_problem(&lab).message.starts_with("22 bytes"));

    let lab = lab_with_globals(r#""ipmi_user": "user-of-17-bytes!", "ipmi_pass": "pw""#);
    let p = one_problem(&lab);
    assert_eq!((p.node.as_deref(), p.field.as_str()), (None, "ipmi_user"));
    assert!(p.to_string().contains("17 bytes"), "{p}");
    assert!(p.to_string().contains("16"), "{p}");

    // Load refuses such a lab and its error never holds the password.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    std::fs::write(
        &path,
        format!(r#"{{ "ipmi_pass": "{secret}", "nodes": [ {GOOD2} ] }}"#),
    )
    .unwrap();
    let err = LabConfig::load(&path).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("ipmi_pass"), "{text}");
    assert!(!text.contains(secret), "password shown: {text}");
}
