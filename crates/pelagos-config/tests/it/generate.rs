//! The generated files: snapshots for the demo lab, template overrides, the
//! original's conman.conf.tmpl, and what is refused.

use crate::common::{demo_lab, fixture};
use pelagos_config::LabConfig;
use pelagos_config::generate::{self, GenerateError, Kind, Options, Output};
use std::path::Path;

fn render(lab: &LabConfig, opts: &Options, dir: &Path) -> Vec<Output> {
    generate::render_all(lab, opts, dir).unwrap()
}

fn one(lab: &LabConfig, kind: Kind, dir: &Path) -> String {
    render(lab, &Options::only([kind]), dir).remove(0).contents
}

#[test]
fn snapshots_of_every_output_for_the_demo_lab() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = render(&demo_lab(), &Options::default(), dir.path());
    let kinds: Vec<Kind> = outputs.iter().map(|o| o.kind).collect();
    assert_eq!(kinds, Kind::ALL);
    for o in &outputs {
        assert_eq!(o.rel_path, Path::new(o.kind.rel_path()));
        assert!(o.template.starts_with("embedded"), "{}", o.template);
        insta::assert_snapshot!(format!("demo_{}", o.kind), o.contents);
    }
}

#[test]
fn snapshot_of_the_upsert_sql() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sql_upsert: true,
        ..Options::only([Kind::Sql])
    };
    let out = render(&demo_lab(), &opts, dir.path()).remove(0);
    insta::assert_snapshot!("demo_sql_upsert", out.contents);
}

#[test]
fn original_sample_renders_like_the_original_with_its_bugs_fixed() {
    let lab = LabConfig::load(&fixture("original-sample-fixed.hjson")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        one(&lab, Kind::Dnsmasq, dir.path()),
        "dhcp-host=aa:bb:cc:dd:ee:11,client-1,10.11.12.11\n\
         dhcp-host=aa:bb:cc:dd:ff:11,client-1-bmc,10.11.12.111\n\
         ptr-record=11.12.11.10.in-addr.arpa,client-1.a.b.c.de\n\
         ptr-record=111.12.11.10.in-addr.arpa,client-1-bmc.a.b.c.de\n"
    );
    // The provisioner has no BMC: no console for it (the original wrote dev="ipmi:").
    let conman = one(&lab, Kind::Conman, dir.path());
    assert!(conman.contains(
        "\nCONSOLE name=\"client-1\" IPMIOPTS=\"U:root,P:password\" dev=\"ipmi:10.11.12.111\"\n"
    ));
    assert!(!conman.contains("provisioner"));
    // t_exclude yes: only the client goes to teuthology.
    let sql = one(&lab, Kind::Sql, dir.path());
    assert_eq!(sql.matches("INSERT INTO nodes").count(), 1);
    assert!(sql.contains("'client-1.a.b.c', 't-client', 'aa:bb:cc:dd:ee:11'"));
}

#[test]
fn the_original_conman_template_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let tmpl = dir.path().join(generate::LEGACY_CONMAN_TEMPLATE);
    std::fs::create_dir_all(tmpl.parent().unwrap()).unwrap();
    std::fs::write(
        &tmpl,
        "SERVER logdir=\"/srv/conman/\"\nGLOBAL log=\"console.%N\"\n\n@@CONSOLES@@\n\n# end\n",
    )
    .unwrap();
    let out = render(&demo_lab(), &Options::only([Kind::Conman]), dir.path()).remove(0);
    assert_eq!(out.template, tmpl.display().to_string());
    let lines: Vec<&str> = out.contents.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "SERVER logdir=\"/srv/conman/\"",
            "GLOBAL log=\"console.%N\"",
            ""
        ]
    );
    assert_eq!(
        lines[3],
        "CONSOLE name=\"storage-01\" IPMIOPTS=\"U:ADMIN,P:demo-bmc-password\" dev=\"ipmi:10.20.1.11\""
    );
    assert!(
        lines[7].starts_with("CONSOLE name=\"bench-01\""),
        "{lines:?}"
    );
    assert_eq!(lines[8..], ["", "# end"]);
}

#[test]
fn a_template_in_the_target_dir_overrides_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let over = generate::override_path(dir.path(), "dnsmasq");
    assert_eq!(over, dir.path().join("templates/dnsmasq.tera"));
    std::fs::create_dir_all(over.parent().unwrap()).unwrap();
    std::fs::write(
        &over,
        "# {{ dhcp_hosts | length }} hosts\n{% for h in dhcp_hosts %}dhcp-host={{ h.macs }},{{ h.name }},{{ h.ip }},12h\n{% endfor %}",
    )
    .unwrap();
    let out = render(&demo_lab(), &Options::only([Kind::Dnsmasq]), dir.path()).remove(0);
    assert_eq!(out.template, over.display().to_string());
    assert!(
        out.contents
            .starts_with("# 12 hosts\ndhcp-host=52:54:00:20:00:11,storage-01,10.20.0.11,12h\n")
    );
    assert!(!out.contents.contains("ptr-record"));
}

#[test]
fn a_broken_override_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let over = generate::override_path(dir.path(), "roster");
    std::fs::create_dir_all(over.parent().unwrap()).unwrap();
    std::fs::write(&over, "ok\n{% for h in hosts %}{{ h.name \n").unwrap();
    let err =
        generate::render_all(&demo_lab(), &Options::only([Kind::Roster]), dir.path()).unwrap_err();
    assert!(matches!(err, GenerateError::Template { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("templates/roster.tera"), "{text}");
    assert!(
        text.contains(":2:") || text.contains(" 2 |") || text.contains("2:"),
        "{text}"
    );
}

#[test]
fn an_invalid_lab_renders_nothing() {
    let mut lab = demo_lab();
    // A malformed MAC stays in the record as written; the model has none.
    lab.nodes[1].mac = None;
    lab.nodes[1].raw.insert("mac".into(), "not-a-mac".into());
    lab.nodes[2].ip = lab.nodes[3].ip.clone();
    let err =
        generate::render_all(&lab, &Options::default(), Path::new("/nonexistent")).unwrap_err();
    let GenerateError::Invalid { problems } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(err.to_string().contains("not-a-mac"), "{err}");
}

#[test]
fn write_all_writes_conman_conf_private_and_the_rest_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let outputs = render(&demo_lab(), &Options::default(), dir.path());
    let written = generate::write_all(&outputs, dir.path()).unwrap();
    assert_eq!(written.len(), 5);
    for (o, path) in outputs.iter().zip(&written) {
        assert_eq!(*path, dir.path().join(&o.rel_path));
        assert_eq!(std::fs::read_to_string(path).unwrap(), o.contents);
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        if o.kind == Kind::Conman {
            assert_eq!(mode, 0o600, "conman.conf holds the BMC password");
        } else {
            assert_eq!(mode & 0o044, 0o044, "{} mode {mode:o}", o.kind);
        }
    }
}

#[test]
fn the_password_never_shows_in_debug_output_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = render(&demo_lab(), &Options::default(), dir.path());
    assert!(!format!("{outputs:?}").contains("demo-bmc-password"));
    let mut lab = demo_lab();
    lab.ipmi_pass = pelagos_config::Secret::new("pa,ss");
    let err = generate::render_all(&lab, &Options::only([Kind::Conman]), dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ipmi_pass") && text.contains("comma"),
        "{text}"
    );
    assert!(!text.contains("pa,ss"), "{text}");
    // Quotable alone, but not together with the user name.
    lab.ipmi_user = "o'neil".into();
    lab.ipmi_pass = pelagos_config::Secret::new("pa\"ss");
    let err = generate::render_all(&lab, &Options::only([Kind::Conman]), dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("ipmi_pass") && text.contains("both"),
        "{text}"
    );
    assert!(!text.contains("pa\"ss"), "{text}");
}

#[test]
fn console_dev_override_cipher_suite_and_quotes() {
    let lab = LabConfig::parse(
        r#"{ "ipmi_user": "op", "ipmi_pass": "a\"b", "nodes": [
            { "node": "vm1.lab", "console_dev": "unix:/run/vm1.sock" },
            { "node": "hw1.lab", "bmc_ip": "10.0.1.1", "cipher_suite": 3 },
            { "node": "nobmc.lab" } ] }"#,
    )
    .unwrap();
    let conman = one(&lab, Kind::Conman, Path::new("/nonexistent"));
    assert!(
        conman.contains("\nCONSOLE name=\"vm1\" dev=\"unix:/run/vm1.sock\"\n"),
        "{conman}"
    );
    assert!(
        conman
            .contains("\nCONSOLE name=\"hw1\" IPMIOPTS='U:op,P:a\"b,C:3' dev=\"ipmi:10.0.1.1\"\n"),
        "{conman}"
    );
    assert!(!conman.contains("nobmc"), "{conman}");
}

#[test]
fn ptr_records_without_a_domain_have_no_trailing_dot() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "a.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
              "ip_type": "dynamic" } ] }"#,
    )
    .unwrap();
    let dns = one(&lab, Kind::Dnsmasq, Path::new("/nonexistent"));
    assert_eq!(
        dns,
        "dhcp-host=aa:bb:cc:dd:ee:01,a,10.0.0.1\nptr-record=1.0.0.10.in-addr.arpa,a\n"
    );
}

#[test]
fn macs_are_written_lower_case_with_colons() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "a", "mac": "AA-BB-CC-DD-EE-0F", "ip": "10.0.0.1",
              "ip_type": "dynamic", "hsm_mac": "AA:BB:CC:DD:EE:10" } ] }"#,
    )
    .unwrap();
    let dir = Path::new("/nonexistent");
    assert!(one(&lab, Kind::Dnsmasq, dir).starts_with("dhcp-host=aa:bb:cc:dd:ee:0f,a,"));
    let udev = one(&lab, Kind::Udev, dir);
    assert!(udev.contains("ATTR{address}==\"aa:bb:cc:dd:ee:0f\", KERNEL==\"eth*\", NAME=\"eth0\""));
    assert!(udev.contains("ATTR{address}==\"aa:bb:cc:dd:ee:10\", KERNEL==\"eth*\", NAME=\"eth2\""));
}

#[test]
fn sql_refuses_values_wider_than_the_paddles_columns() {
    let mut lab = demo_lab();
    lab.nodes[0].t_machine_type = "m".repeat(33);
    let err = generate::render_all(&lab, &Options::only([Kind::Sql]), Path::new("/nonexistent"))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("storage-01.lab.example.com") && text.contains("t_machine_type"),
        "{text}"
    );
    assert!(text.contains("32"), "{text}");
}

#[test]
fn only_and_kind_names() {
    assert_eq!(
        Options::parse_kinds("sql, dnsmasq").unwrap(),
        [Kind::Sql, Kind::Dnsmasq]
    );
    let err = Options::parse_kinds("dnsmasq,dhcp").unwrap_err();
    assert!(err.to_string().contains("\"dhcp\""), "{err}");
    assert_eq!(
        Options::only([Kind::Udev, Kind::Sql, Kind::Udev]).kinds,
        [Kind::Sql, Kind::Udev]
    );
}

#[test]
fn a_write_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // `sql` is a file where a directory is needed.
    std::fs::write(dir.path().join("sql"), "").unwrap();
    let outputs = render(&demo_lab(), &Options::default(), dir.path());
    let err = generate::write_all(&outputs, dir.path()).unwrap_err();
    assert!(matches!(err, GenerateError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("sql/nodes.sql"), "{err}");
}

#[test]
fn a_lab_without_dynamic_addresses_or_teuthology_nodes() {
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "a", "ip": "10.0.0.1", "ip_type": "static", "t_exclude": "yes" } ] }"#,
    )
    .unwrap();
    let dir = Path::new("/nonexistent");
    assert_eq!(one(&lab, Kind::Dnsmasq, dir), "");
    assert_eq!(one(&lab, Kind::Sql, dir), "BEGIN;\nCOMMIT;\n");
    assert_eq!(one(&lab, Kind::Udev, dir), "");
    assert_eq!(
        one(&lab, Kind::Roster, dir),
        "\"a\":\n  host: \"10.0.0.1\"\n  user: \"root\"\n"
    );
}

#[test]
fn a_big_lab_renders_in_parallel_with_the_same_result_and_order() {
    let lab = LabConfig::parse(&crate::common::big_lab_json(2_000)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        kinds: vec![Kind::Udev, Kind::Sql, Kind::Dnsmasq, Kind::Conman],
        sql_upsert: false,
    };
    let all = render(&lab, &opts, dir.path());
    assert_eq!(all.iter().map(|o| o.kind).collect::<Vec<_>>(), opts.kinds);
    for o in &all {
        assert_eq!(o.contents, one(&lab, o.kind, dir.path()), "{}", o.kind);
    }
    assert_eq!(all[2].contents.lines().count(), 8_000);
    // An error on the helper thread is returned, not lost.
    let over = generate::override_path(dir.path(), "udev");
    std::fs::create_dir_all(over.parent().unwrap()).unwrap();
    std::fs::write(
        &over,
        "{% for n in nodes %}{{ n.no_such_field.deeper }}{% endfor %}",
    )
    .unwrap();
    let err = generate::render_all(&lab, &opts, dir.path()).unwrap_err();
    assert!(err.to_string().contains("templates/udev.tera"), "{err}");
    assert!(
        err.to_string().contains("no_such_field"),
        "a render-time error: {err}"
    );
}

/// Without an override each file is written directly; with the embedded
/// templates copied in as overrides it goes through tera. Both give the same
/// bytes, for every kind, on labs that reach every branch of the templates.
#[test]
fn the_writers_and_the_embedded_templates_give_the_same_files() {
    let edge = LabConfig::parse(
        r#"{ "ipmi_user": "op", "ipmi_pass": "a\"b", "nodes": [
            { "node": "vm1.lab", "console_dev": "unix:/run/vm1.sock", "mac": "AA-BB-CC-DD-EE-01",
              "ip": "10.0.0.1", "ip_type": "dynamic", "hsm_mac": ["aa:bb:cc:dd:ee:02", "AA:BB:CC:DD:EE:03"],
              "hsm_ip": "10.0.2.1", "hsm_ip_type": "dynamic", "ssh_port": 2222,
              "comment": "it's a \\ test", "t_arch": "aarch64" },
            { "node": "hw1.lab", "bmc_ip": "10.0.1.1", "bmc_mac": "aa:bb:cc:dd:ff:01",
              "bmc_ip_type": "dynamic", "cipher_suite": 3, "boot_ip": "10.0.3.1", "t_exclude": "yes" },
            { "node": "nothing.lab" } ] }"#,
    )
    .unwrap();
    let labs = [
        demo_lab(),
        LabConfig::load(&fixture("original-sample-fixed.hjson")).unwrap(),
        edge,
        LabConfig::parse(&crate::common::full_lab_json(300)).unwrap(),
    ];
    let embedded = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generate/templates");
    let with_templates = tempfile::tempdir().unwrap();
    let templates = with_templates.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for name in ["dnsmasq", "conman-consoles", "roster", "sql", "udev"] {
        std::fs::copy(
            embedded.join(format!("{name}.tera")),
            templates.join(format!("{name}.tera")),
        )
        .unwrap();
    }
    let without = tempfile::tempdir().unwrap();
    for lab in &labs {
        for sql_upsert in [false, true] {
            let opts = Options {
                sql_upsert,
                ..Options::default()
            };
            let direct = render(lab, &opts, without.path());
            let tera = render(lab, &opts, with_templates.path());
            for (d, t) in direct.iter().zip(&tera) {
                assert_eq!(d.contents, t.contents, "{}", d.kind);
                assert!(d.template.starts_with("embedded"), "{}", d.template);
            }
            assert!(tera[0].template.ends_with("templates/dnsmasq.tera"));
        }
    }
}
