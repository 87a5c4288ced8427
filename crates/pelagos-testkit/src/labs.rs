//! Large generated labs (lab JSON for pelagos-config), for the tests and
//! benchmarks that need thousands of nodes.

/// A lab of `n` valid nodes, every address dynamic (what the benchmark renders).
pub fn big_lab_json(n: usize) -> String {
    let nodes: Vec<String> = (0..n)
        .map(|i| {
            let (a, b) = (i / 250, i % 250 + 1);
            format!(
                r#"{{"node": "n{i}.lab.test", "mac": "52:54:{:02x}:{:02x}:00:01", "ip": "10.{a}.{b}.1",
                    "ip_type": "dynamic", "bmc_mac": "52:54:{:02x}:{:02x}:00:02", "bmc_ip": "10.{a}.{b}.2",
                    "bmc_ip_type": "dynamic", "t_machine_type": "smithi", "comment": "node {i}"}}"#,
                i / 256,
                i % 256,
                i / 256,
                i % 256
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "pw", "domain": "lab.test", "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}

/// The "full" benchmark lab: `n` valid nodes, each with every field
/// make-cfgs writes (mac, ip, bmc_mac, bmc_ip, both address types dynamic,
/// t_machine_type, t_exclude and a comment); about 2.6 MB for 10,000 nodes.
pub fn full_lab_json(n: usize) -> String {
    let nodes: Vec<String> = (0..n)
        .map(|i| {
            let (a, b) = (i / 250, i % 250 + 1);
            let (hi, lo) = (i / 256, i % 256);
            format!(
                r#"{{"node": "n{i}.lab.test", "mac": "52:54:{hi:02x}:{lo:02x}:00:01", "ip": "10.{a}.{b}.1", "ip_type": "dynamic", "bmc_mac": "52:54:{hi:02x}:{lo:02x}:00:02", "bmc_ip": "10.{a}.{b}.2", "bmc_ip_type": "dynamic", "t_machine_type": "smithi", "t_exclude": "no", "comment": "node {i}, rack r{}"}}"#,
                i / 40
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "pw", "domain": "lab.test", "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}
