//! `GET /metrics` scraped and parsed line by line after provisions of each
//! outcome: counters, stage and BMC histograms, the HTTP requests by route
//! template, bounded label sets; its authentication; `--log-format json`.

use crate::common::listening_url;
use crate::{Fixture, KillOnDrop, Server};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

/// One sample line: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The Prometheus text format (0.0.4), strictly: `# HELP`/`# TYPE` lines,
/// then samples `name{k="v",...} value`. Panics on any other line. The
/// samples, and the type of each family.
fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect(line);
            assert!(name_ok(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(
                types.insert(name.to_owned(), ty.to_owned()).is_none(),
                "twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(name_ok(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect(line);
                (name, parse_labels(body, line))
            }
        };
        assert!(name_ok(name), "{line}");
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    // Every sample belongs to a typed family.
    for s in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| {
                let base = s.name.strip_suffix(suf)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(&s.name);
        assert!(types.contains_key(family), "no TYPE for {}", s.name);
    }
    (samples, types)
}

fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next().expect(line) {
                '\\' => match chars.next().expect(line) {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        assert!(out.insert(key, value).is_none(), "label twice: {line}");
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => panic!("{c:?} in {line}"),
        }
    }
    out
}

/// The value of the one sample `name` whose labels include `labels`; 0 when
/// there is none (a counter not yet incremented), a panic when there are
/// several.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().map_or(0.0, |s| s.value)
}

async fn scrape(s: &Server) -> Vec<Sample> {
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&r.text().await.unwrap()).0
}

#[tokio::test]
async fn provisions_stages_bmc_and_requests_are_counted() {
    let fx = Fixture::new();
    let s = Server::start(&fx, &[]);

    let m = scrape(&s).await;
    assert_eq!(value(&m, "pelagos_provisions_started_total", &[]), 0.0);
    assert_eq!(value(&m, "pelagos_provisions_active", &[]), 0.0);
    assert_eq!(value(&m, "pelagos_nodes_disabled", &[]), 0.0);

    // Two that succeed, one whose BMC fails, one whose salt state fails.
    let mut ids = Vec::new();
    for node in ["ok1.lab", "ok2.lab", "bmc.lab", "salt.lab"] {
        ids.push(s.start_provision(node, "sle").await);
    }
    let mut codes = Vec::new();
    for id in &ids {
        codes.push(s.wait_task(id).await.0);
    }
    assert_eq!(codes, [200, 200, 502, 500]);
    assert_eq!(s.get("/nosuch/route").await.status(), 404);
    assert_eq!(s.get("/node/ok1.lab").await.status(), 200);

    let m = scrape(&s).await;
    let started = value(&m, "pelagos_provisions_started_total", &[]);
    assert_eq!(started, 4.0);
    let finished = "pelagos_provisions_finished_total";
    assert_eq!(value(&m, finished, &[("result", "done")]), 2.0);
    assert_eq!(value(&m, finished, &[("result", "bmc")]), 1.0);
    assert_eq!(value(&m, finished, &[("result", "salt")]), 1.0);
    let all_finished: f64 = m
        .iter()
        .filter(|s| s.name == finished)
        .map(|s| s.value)
        .sum();
    assert_eq!(all_finished, 4.0);
    assert_eq!(value(&m, "pelagos_provisions_active", &[]), 0.0);

    // Stages that completed: the BMC failure stops at bootdev, the salt
    // failure in salt.
    let stage = "pelagos_provision_stage_seconds_count";
    for (name, n) in [
        ("boot_record", 4.0),
        ("bootdev", 3.0),
        ("power", 3.0),
        ("wait_new_boot", 3.0),
        ("wait_ssh", 3.0),
        ("verify_os", 3.0),
        ("local_record", 3.0),
        ("salt", 2.0),
        ("reboot", 0.0),
    ] {
        assert_eq!(value(&m, stage, &[("stage", name)]), n, "stage {name}");
    }
    assert_histograms_consistent(&m);

    // Every BMC command the machine sent, timed; the failure by its kind.
    let bmc = "pelagos_bmc_command_seconds_count";
    assert_eq!(value(&m, bmc, &[("command", "bootdev")]), 4.0);
    assert_eq!(value(&m, bmc, &[("command", "power_cycle")]), 3.0);
    let errors = "pelagos_bmc_errors_total";
    assert_eq!(
        value(
            &m,
            errors,
            &[("command", "bootdev"), ("kind", "unreachable")]
        ),
        1.0
    );
    let all_errors: f64 = m.iter().filter(|s| s.name == errors).map(|s| s.value).sum();
    assert_eq!(all_errors, 1.0);

    // Requests by route template, never the raw path.
    let http = "pelagos_http_requests_total";
    let post = [
        ("route", "/node/provision"),
        ("method", "POST"),
        ("status", "202"),
    ];
    assert_eq!(value(&m, http, &post), 4.0);
    let polls = value(
        &m,
        http,
        &[
            ("route", "/tasks/status/{id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    ) + value(
        &m,
        http,
        &[
            ("route", "/tasks/status/{id}"),
            ("method", "GET"),
            ("status", "202"),
        ],
    );
    assert!(polls >= 4.0, "{polls}");
    let unmatched = [("route", "none"), ("method", "GET"), ("status", "404")];
    assert_eq!(value(&m, http, &unmatched), 1.0);
    assert_eq!(
        value(&m, http, &[("route", "/node/{name}"), ("status", "200")]),
        1.0
    );
    // The first scrape was counted too.
    assert_eq!(
        value(&m, http, &[("route", "/metrics"), ("status", "200")]),
        1.0
    );

    // Bounded label sets: each label's values come from a fixed list, and
    // no value is a task id, a node name or a raw path.
    let allowed: BTreeMap<&str, BTreeSet<&str>> = [
        (
            "result",
            BTreeSet::from([
                "done",
                "dismissed",
                "interrupted",
                "panic",
                "bmc",
                "cannot_boot",
                "timeout",
                "wrong_os",
                "os_unverified",
                "salt",
                "error",
            ]),
        ),
        (
            "stage",
            BTreeSet::from([
                "boot_record",
                "bootdev",
                "power",
                "wait_new_boot",
                "wait_ssh",
                "verify_os",
                "local_record",
                "salt",
                "reboot",
            ]),
        ),
        (
            "command",
            BTreeSet::from([
                "bootdev",
                "power_on",
                "power_off",
                "power_cycle",
                "power_reset",
                "power_soft",
            ]),
        ),
        ("method", BTreeSet::from(["GET", "POST", "HEAD", "other"])),
    ]
    .into();
    for sample in &m {
        for (k, v) in &sample.labels {
            assert!(
                ids.iter().all(|id| !v.contains(id.as_str())) && !v.contains(".lab"),
                "{sample:?}"
            );
            match k.as_str() {
                "le" | "status" | "kind" => {}
                "route" => assert!(v == "none" || v.starts_with('/'), "{sample:?}"),
                other => {
                    let set = allowed.get(other).unwrap_or_else(|| panic!("{sample:?}"));
                    assert!(set.contains(v.as_str()), "{sample:?}");
                }
            }
        }
    }
}

/// Each histogram: cumulative buckets that never decrease, ending at
/// `+Inf` with the count.
fn assert_histograms_consistent(m: &[Sample]) {
    // (family, labels but `le`) -> (le, cumulative count)
    type Series = (String, Vec<(String, String)>);
    let mut buckets: BTreeMap<Series, Vec<(f64, f64)>> = BTreeMap::new();
    for s in m.iter().filter(|s| s.name.ends_with("_bucket")) {
        let le: f64 = match s.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let rest: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let base = s.name.strip_suffix("_bucket").unwrap().to_owned();
        buckets.entry((base, rest)).or_default().push((le, s.value));
    }
    assert!(!buckets.is_empty());
    for ((base, labels), mut bs) in buckets {
        bs.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(bs.windows(2).all(|w| w[0].1 <= w[1].1), "{base} {labels:?}");
        let (le, last) = *bs.last().unwrap();
        assert!(le.is_infinite(), "{base} {labels:?} has no +Inf bucket");
        let want: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            last,
            value(m, &format!("{base}_count"), &want),
            "{base} {labels:?}"
        );
    }
}

#[tokio::test]
async fn metrics_need_credentials_when_htpasswd_is_on() {
    let fx = Fixture::new();
    let hash = bcrypt::hash("scrape-pw", 4).unwrap();
    std::fs::write(fx.path("htpasswd"), format!("prom:{hash}\n")).unwrap();
    let file = fx.path("htpasswd");
    let s = Server::start(&fx, &["--htpasswd", file.to_str().unwrap()]);
    assert_eq!(s.get("/metrics").await.status(), 401);
    let r = s
        .http
        .get(s.u("/metrics"))
        .basic_auth("prom", Some("scrape-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (m, _) = parse(&r.text().await.unwrap());
    // The refusal was counted, without a route: authentication answered
    // before routing.
    assert_eq!(
        value(
            &m,
            "pelagos_http_requests_total",
            &[("route", "none"), ("status", "401")]
        ),
        1.0
    );
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let fx = Fixture::new();
    let mut cmd = fx.server_command();
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    listening_url(&mut child.0, Duration::from_secs(60)).expect("server address");
    let mut lines = BufReader::new(stderr).lines();
    // Up to "listening on", which is logged after the lab is loaded.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["level"], "INFO", "{line}");
        let msg = v["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        seen.push(msg.clone());
        if msg.starts_with("listening on") {
            break;
        }
    }
    assert!(seen.iter().any(|m| m == "lab loaded"), "{seen:?}");
}

#[tokio::test]
async fn disabled_nodes_are_a_gauge() {
    let fx = Fixture::new();
    let good = r#""node": "slow2.lab", "mac": "aa:bb:cc:dd:ee:08""#;
    let bad = r#""node": "slow2.lab", "mac": "aa.bb.cc.dd:68:73""#;
    assert!(crate::LAB.contains(good));
    std::fs::write(fx.path("lab.json"), crate::LAB.replace(good, bad)).unwrap();
    let s = Server::start(&fx, &[]);
    let m = scrape(&s).await;
    assert_eq!(value(&m, "pelagos_nodes_disabled", &[]), 1.0);
}
