//! One test per validation rule: each problem names the node and the field,
//! and every problem of a lab is reported at once.

use pelagos_config::{ConfigError, LabConfig, Problem, Scope};
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
    // Only two nodes of one name take the whole lab down.
    let lab_wide = field == "node" && node == "n1.lab";
    assert_eq!(
        p.scope,
        if lab_wide { Scope::Lab } else { Scope::Node },
        "{p}"
    );
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

#[rstest]
#[case::plain("core")]
#[case::dotted("ceph.osd")]
#[case::underscore_dash("a_b-c")]
#[case::digit_first("0day")]
#[case::longest(&"a".repeat(pelagos_config::SLS_NAME_MAX))]
fn salt_state_names_that_are_accepted(#[case] name: &str) {
    assert_eq!(pelagos_config::check_sls_name(name), Ok(()));
}

#[rstest]
#[case::short_option("-r")]
#[case::long_option("--out-file=/x")]
#[case::config_dir_option("-c")]
#[case::hidden(".hidden")]
#[case::keyword_argument(r#"pillar={"a":1}"#)]
#[case::slash("a/b")]
#[case::parent("../x")]
#[case::two_words("a b")]
#[case::tab("a\tb")]
#[case::empty("")]
#[case::too_long(&"a".repeat(pelagos_config::SLS_NAME_MAX + 1))]
#[case::non_ascii("café")]
#[case::nul("a\0b")]
#[case::newline("a\n--out-file=/x")]
fn salt_state_names_that_are_refused(#[case] name: &str) {
    let err = pelagos_config::check_sls_name(name).unwrap_err();
    assert_eq!(
        err,
        pelagos_config::SlsError::Name {
            value: name.to_owned()
        }
    );
    let shown = err.in_place("form field `extra_sls`");
    assert!(
        shown.starts_with(&format!(
            "invalid salt state name in form field `extra_sls`: {name:?} ("
        )),
        "{shown}"
    );
    assert!(!shown.contains('\0') && !shown.contains('\n'), "{shown:?}");
    if name.len() > pelagos_config::SLS_NAME_MAX {
        assert!(shown.ends_with("(129 bytes long; at most 128)"), "{shown}");
    } else {
        assert!(
            shown.ends_with("(allowed: letters, digits, _ . -, not starting with - or .)"),
            "{shown}"
        );
    }
}

#[test]
fn a_list_of_salt_states_is_bounded_and_checked_name_by_name() {
    use pelagos_config::{SLS_STATES_MAX, SlsError, check_sls_names};
    let names: Vec<String> = (0..SLS_STATES_MAX).map(|i| format!("s{i}")).collect();
    assert_eq!(check_sls_names(names.iter().map(String::as_str)), Ok(()));
    let more: Vec<String> = (0..=SLS_STATES_MAX).map(|i| format!("s{i}")).collect();
    let err = check_sls_names(more.iter().map(String::as_str)).unwrap_err();
    assert_eq!(
        err,
        SlsError::TooMany {
            count: SLS_STATES_MAX + 1
        }
    );
    assert_eq!(
        err.in_place("form field `add_sls`"),
        "too many salt states in form field `add_sls`: 65 (at most 64)"
    );
    // The first bad name is the one reported.
    assert_eq!(
        check_sls_names(["core", "-r", "--out-file=/x"]),
        Err(SlsError::Name { value: "-r".into() })
    );
    // A huge value is cut in the message, with its length.
    let huge = format!("-{}", "x".repeat(10_000));
    let shown = check_sls_names([huge.as_str()])
        .unwrap_err()
        .in_place("form field `extra_sls`");
    assert!(
        shown.len() < 400 && shown.contains("(10001 bytes)"),
        "{shown}"
    );
}

#[rstest]
#[case::option_in_a_string(
    r#""sls_list": "core, --out-file=/root/.bashrc""#,
    "--out-file=/root/.bashrc"
)]
#[case::option_in_a_list(r#""sls_list": ["core", "-r"]"#, "-r")]
#[case::keyword_argument(r#""sls_list": ["pillar={\"a\":1}"]"#, r#"pillar={"a":1}"#)]
#[case::two_words(r#""sls_list": "core, ceph osd""#, "ceph osd")]
#[case::path(r#""sls_list": "../../etc/x""#, "../../etc/x")]
fn a_bad_sls_list_entry_is_a_problem_naming_the_field_and_value(
    #[case] globals: &str,
    #[case] value: &str,
) {
    let p = one_problem(&lab_with_globals(globals));
    assert_eq!((p.node.as_deref(), p.field.as_str()), (None, "sls_list"));
    assert_eq!(p.value, value);
    assert!(p.message.contains("not a salt state name"), "{p}");

    // And the lab does not load.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    std::fs::write(&path, format!(r#"{{ {globals}, "nodes": [ {GOOD2} ] }}"#)).unwrap();
    let err = LabConfig::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("field `sls_list` = \"{value}\"")),
        "{text}"
    );
}

#[test]
fn a_good_sls_list_loads_and_an_over_long_one_is_a_problem() {
    let lab = lab_with_globals(r#""sls_list": "core, ceph.osd, a_b-c""#);
    assert_eq!(lab.validate(), []);
    assert_eq!(lab.sls_list, ["core", "ceph.osd", "a_b-c"]);
    let list: Vec<String> = (0..=pelagos_config::SLS_STATES_MAX)
        .map(|i| format!("s{i}"))
        .collect();
    let lab = lab_with_globals(&format!(r#""sls_list": "{}""#, list.join(",")));
    let p = one_problem(&lab);
    assert_eq!(p.field, "sls_list");
    assert!(p.message.contains("65 salt states"), "{p}");
}

/// The original's own integration-test lab wrote MACs such as
/// `aa.bb.cc.dd:68:73`: the server's load disables such a node and keeps
/// the others; make-cfgs' load refuses the lab.
#[test]
fn load_serving_disables_bad_nodes_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    std::fs::write(
        &path,
        r#"{ "nodes": [
            { "node": "good1", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1" },
            { "node": "bad", "mac": "aa.bb.cc.dd:68:73", "ip": "10.0.0.2", "bmc_port": "x" },
            { "node": "good2", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.0.0.3" },
            { "mac": "aa:bb:cc:dd:ee:04" } ] }"#,
    )
    .unwrap();
    let lab = LabConfig::load_serving(&path).unwrap();
    let disabled: Vec<&str> = lab.disabled_nodes().map(|n| n.node.as_str()).collect();
    assert_eq!(disabled, ["bad", ""]);
    let bad = lab.node("bad").unwrap();
    let fields: Vec<(&str, &str)> = bad
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(fields, [("bmc_port", "x"), ("mac", "aa.bb.cc.dd:68:73")]);
    assert!(bad.problems.iter().all(|p| p.scope == Scope::Node));
    let nameless = &lab.nodes[3];
    assert_eq!(nameless.problems[0].node.as_deref(), Some("#3"));
    assert_eq!(nameless.problems[0].field, "node");
    assert!(!lab.node("good1").unwrap().is_disabled());
    assert!(!lab.node("good2").unwrap().is_disabled());

    let err = LabConfig::load(&path).unwrap_err();
    assert_eq!(err.problems().len(), 4, "{err}");
}

/// A lab-wide problem refuses the lab, listing node problems too.
#[test]
fn load_serving_refuses_lab_wide_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    std::fs::write(
        &path,
        r#"{ "nodes": [ { "node": "a", "mac": "x" }, { "node": "a" } ] }"#,
    )
    .unwrap();
    let err = LabConfig::load_serving(&path).unwrap_err();
    let problems = err.problems();
    let shown: Vec<(&str, Scope)> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.scope))
        .collect();
    assert_eq!(shown, [("mac", Scope::Node), ("node", Scope::Lab)], "{err}");
    std::fs::write(&path, r#"{ "nodes": [] }"#).unwrap();
    let err = LabConfig::load_serving(&path).unwrap_err();
    assert_eq!(err.problems()[0].field, "nodes");
    std::fs::write(&path, "{ nodes: [").unwrap();
    let err = LabConfig::load_serving(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert_eq!(err.problems()[0].scope, Scope::Lab);
}
