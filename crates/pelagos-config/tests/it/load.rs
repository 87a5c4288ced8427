//! Loading lab configs: the original's files, comments, booleans, lists.

use crate::common::{demo_lab, fixture, workspace_root};
use pelagos_config::{ConfigError, IpType, LabConfig, Scope};
use pelagos_testkit::log::LogCapture;
use std::time::Duration;

#[test]
fn original_readme_sample_as_printed_fails_with_line_and_column() {
    let path = workspace_root().join("examples/original-sample.hjson");
    let err = LabConfig::load(&path).unwrap_err();
    let ConfigError::Syntax { origin, message } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert!(origin.ends_with("original-sample.hjson"), "{origin}");
    // The sample closes `nodes` with `}` and never closes the outer object:
    // the parser stops at the end of the file, line 43.
    assert!(message.contains("43:1"), "no line:column in {message:?}");
    assert!(err.to_string().contains("original-sample.hjson"), "{err}");
}

#[test]
fn original_readme_sample_with_brackets_fixed_loads() {
    let lab = LabConfig::load(&fixture("original-sample-fixed.hjson")).unwrap();
    assert_eq!(lab.ipmi_user, "root");
    assert_eq!(lab.ipmi_pass.expose(), "password");
    assert_eq!(lab.domain, "a.b.c.de");
    assert_eq!(lab.nodes.len(), 2);
    let prov = lab.node("provisioner.a.b.c").unwrap();
    assert!(prov.t_exclude);
    assert!(prov.provision_need_reboot);
    assert_eq!(prov.ip_type, IpType::Unmanaged);
    assert_eq!(prov.comment, "dns, dhcp, tftp");
    let client = lab.node("client-1.a.b.c").unwrap();
    assert_eq!(client.mac.unwrap(), "aa:bb:cc:dd:ee:11");
    assert_eq!(client.bmc_ip, "10.11.12.111");
    assert_eq!(client.ip_type, IpType::Dynamic);
    assert!(!client.t_exclude);
    assert_eq!(client.t_machine_type, "t-client");
    // The raw record keeps the original keys for the REST API.
    assert_eq!(client.raw["bmc_ip_type"], "dynamic");
}

#[test]
fn demo_lab_loads() {
    let lab = demo_lab();
    assert_eq!(lab.nodes.len(), 5);
    let s1 = lab.node("storage-01.lab.example.com").unwrap();
    assert_eq!(s1.hsm_mac, ["52:54:00:22:00:11", "52:54:00:22:01:11"]);
    assert!(lab.nodes.iter().filter(|n| n.t_exclude).count() == 1);
    assert!(lab.nodes.iter().all(|n| !n.t_machine_type.is_empty()));
}

#[test]
fn slash_comments_block_comments_and_missing_commas() {
    let lab = LabConfig::parse(
        r#"{
            // a line comment
            "domain": "x.test" /* a block comment */
            "nodes": [ { "node": "a" } ]   # and a hash comment
        }"#,
    )
    .unwrap();
    assert_eq!(lab.domain, "x.test");
    assert_eq!(lab.nodes[0].node, "a");
}

#[test]
fn yes_no_and_json_booleans() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [
            { "node": "a", "t_exclude": "yes", "uefi": true, "provision_need_reboot": "no" },
            { "node": "b", "t_exclude": false, "uefi": "no", "provision_need_reboot": true },
            { "node": "c", "t_exclude": "YES" }
        ] }"#,
    )
    .unwrap();
    let [a, b, c] = &lab.nodes[..] else { panic!() };
    assert!(a.t_exclude && a.uefi && !a.provision_need_reboot);
    assert!(!b.t_exclude && !b.uefi && b.provision_need_reboot);
    assert!(c.t_exclude);
}

/// A wrong type in a node's record is that node's problem (node, field and
/// value named), found by validation; at the top level it refuses the file.
#[test]
fn a_boolean_that_is_neither_yes_nor_no_is_an_error_naming_it() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "a", "t_exclude": "maybe" }, { "node": "b", "bmc_port": "x" } ] }"#,
    )
    .unwrap();
    let problems = lab.validate();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert_eq!(
        (problems[0].node.as_deref(), problems[0].field.as_str()),
        (Some("a"), "t_exclude")
    );
    assert_eq!(problems[0].value, "maybe");
    assert!(problems[0].message.contains("maybe"), "{problems:?}");
    assert_eq!(problems[0].scope, Scope::Node);
    assert_eq!(
        (problems[1].node.as_deref(), problems[1].field.as_str()),
        (Some("b"), "bmc_port")
    );
    assert_eq!(problems[1].value, "x");
    // The node is still read, with its name, and defaults for the rest.
    assert_eq!(lab.nodes[0].node, "a");
    assert!(!lab.nodes[0].t_exclude);
    let err =
        LabConfig::parse(r#"{ "verify_os": "maybe", "nodes": [ { "node": "a" } ] }"#).unwrap_err();
    assert!(matches!(err, ConfigError::Type { .. }), "{err:?}");
    assert!(err.to_string().contains("maybe"), "{err}");
}

#[test]
fn hsm_mac_string_or_list() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [
            { "node": "a", "hsm_mac": "aa:bb:cc:dd:ee:01" },
            { "node": "b", "hsm_mac": ["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"] },
            { "node": "c" }
        ] }"#,
    )
    .unwrap();
    assert_eq!(lab.nodes[0].hsm_mac, ["aa:bb:cc:dd:ee:01"]);
    assert_eq!(
        lab.nodes[1].hsm_mac,
        ["aa:bb:cc:dd:ee:02", "aa:bb:cc:dd:ee:03"]
    );
    assert!(lab.nodes[2].hsm_mac.is_empty());
}

#[test]
fn unknown_keys_warn_once_and_keep_working() {
    let (lab, logs) = LogCapture::warnings(|| {
        LabConfig::parse(
            r#"{ "color": "blue", "nodes": [
                { "node": "a", "rack": "r1" }, { "node": "b", "rack": "r2" } ] }"#,
        )
    });
    let lab = lab.unwrap();
    assert_eq!(lab.nodes.len(), 2);
    assert!(lab.validate().is_empty());
    assert_eq!(logs.matches("unknown key").count(), 2, "{logs}");
    assert!(logs.contains("color"), "{logs}");
    assert_eq!(logs.matches("nodes[].rack").count(), 1, "{logs}");
}

#[test]
fn strict_json_loads_and_defaults_apply() {
    let lab = LabConfig::parse(r#"{"nodes": [{"node": "a"}]}"#).unwrap();
    let a = &lab.nodes[0];
    assert_eq!(a.bmc_port, 623);
    assert_eq!(a.ssh_port, 22);
    assert_eq!(a.t_arch, "x86-64");
    assert_eq!(lab.roster_file, "deploy.roster");
    assert_eq!(lab.timing.max_cold_restart, 3);
}

#[test]
fn verify_os_defaults_on_and_reads_booleans_and_yes_no() {
    let lab = LabConfig::parse(r#"{"nodes": []}"#).unwrap();
    assert!(lab.verify_os);
    for (text, want) in [
        (r#"{"verify_os": false}"#, false),
        (r#"{"verify_os": true}"#, true),
        (r#"{"verify_os": "no"}"#, false),
        ("{ verify_os: \"yes\" // Hjson\n }", true),
        ("{ verify_os: false # Hjson\n }", false),
    ] {
        let (lab, logs) = LogCapture::warnings(|| LabConfig::parse(text));
        assert_eq!(lab.unwrap().verify_os, want, "{text}");
        assert!(!logs.contains("unknown key"), "{text}: {logs}");
    }
    assert!(LabConfig::parse(r#"{"verify_os": 3}"#).is_err());
}

#[test]
fn missing_file_error_names_it() {
    let err = LabConfig::load(std::path::Path::new("/nonexistent/lab.json")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/lab.json"), "{err}");
}

#[test]
fn node_lookup_is_by_exact_name() {
    let lab = demo_lab();
    assert!(lab.node("client-01.lab.example.com").is_some());
    assert!(lab.node("client-01").is_none());
    assert!(lab.node("CLIENT-01.lab.example.com").is_none());
}

#[test]
fn new_settings_load_from_integers_strings_and_lists() {
    let lab = LabConfig::parse(
        r#"{ "wait_node_ready_timeout": 600, "ipmi_retries": 5, "cold_restart_delay": 2.5,
             "sls_list": "base, teuthology,,extra",
             "pxe": { "console_opts": "console=ttyS0" },
             "nodes": [ { "node": "a", "bmc_port": 9623, "ssh_port": 2222, "cipher_suite": 3 } ] }"#,
    )
    .unwrap();
    assert_eq!(lab.timing.wait_node_ready_timeout, Duration::from_secs(600));
    assert_eq!(lab.timing.ipmi_retries, 5);
    assert_eq!(lab.timing.cold_restart_delay, Duration::from_millis(2500));
    assert_eq!(
        lab.timing.salt_timeout,
        Duration::from_secs(1800),
        "default kept"
    );
    assert_eq!(lab.sls_list, ["base", "teuthology", "extra"]);
    assert_eq!(lab.pxe.console_opts, "console=ttyS0");
    assert_eq!(
        lab.pxe.bios_opts, "biosdevname=0 net.ifnames=0",
        "default kept"
    );
    let a = &lab.nodes[0];
    assert_eq!(
        (a.bmc_port, a.ssh_port, a.cipher_suite),
        (9623, 2222, Some(3))
    );
    let list = LabConfig::parse(r#"{ "sls_list": ["a", "b"], "nodes": [] }"#).unwrap();
    assert_eq!(list.sls_list, ["a", "b"]);
}
