//! The versioned API (`/api/v1/...`, docs/REST.md) on the real binary:
//! each route, its refusals (`{"error": ...}` with the compatible routes'
//! codes), the OpenAPI document, and credentials under `--htpasswd`.

use crate::{Fixture, IMAGE, LAB, Server, until};
use serde_json::{Value, json};

/// The fixture lab plus a node the lab config disables (malformed MAC)
/// and a UEFI node.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    let mut lab: Value = deser_lab(LAB);
    let nodes = lab["nodes"].as_array_mut().unwrap();
    nodes.push(json!({"node": "bad.lab", "mac": "aa.bb.cc.dd:68:73", "ip": "10.0.0.9"}));
    nodes.push(
        json!({"node": "efi.lab", "mac": "aa:bb:cc:dd:ee:0a", "ip": "10.0.0.10",
                      "bmc_ip": "10.1.0.10", "uefi": "yes"}),
    );
    std::fs::write(fx.path("lab.json"), lab.to_string()).unwrap();
    fx
}

/// The fixture's Hjson lab as JSON (its one comment line dropped).
fn deser_lab(text: &str) -> Value {
    let json: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap()
}

impl Server {
    async fn v1_provision(&self, node: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.u(&format!("/api/v1/nodes/{node}/provision")))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn v1_dismiss(&self, node: &str) -> reqwest::Response {
        self.http
            .delete(self.u(&format!("/api/v1/nodes/{node}/provision")))
            .send()
            .await
            .unwrap()
    }
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let code = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/json", "every v1 answer is JSON");
    (code, r.json().await.unwrap())
}

#[tokio::test]
async fn nodes_and_node() {
    let fx = fixture();
    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json("/api/v1/nodes").await;
    assert_eq!(code, 200);
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 10);
    assert_eq!(
        nodes[0],
        json!({
            "node": "ok1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
            "boot_ip": null, "hsm_mac": [], "hsm_ip": null,
            "bmc": {"ip": "10.1.0.1", "port": 623, "mac": null},
            "uefi": false, "role": null, "comment": "first",
            "os": "Default config is used: pxelinux.cfg/default",
            "active_task": null, "disabled": false, "problems": []
        })
    );
    let text = v.to_string();
    assert!(!text.contains("very-secret"), "no password: {text}");

    let (code, efi) = s.get_json("/api/v1/nodes/efi.lab").await;
    assert_eq!(code, 200);
    assert_eq!(efi["uefi"], true);
    assert_eq!(efi, nodes[9]);

    let (code, bad) = s.get_json("/api/v1/nodes/bad.lab").await;
    assert_eq!(code, 200);
    assert_eq!(bad["disabled"], true);
    assert_eq!(bad["mac"], Value::Null);
    assert_eq!(bad["problems"][0]["field"], "mac");
    assert_eq!(bad["problems"][0]["value"], "aa.bb.cc.dd:68:73");
    assert_eq!(bad["problems"][0]["scope"], "node");

    let (code, e) = json_of(s.get("/api/v1/nodes/nope.lab").await).await;
    assert_eq!(
        (code, e),
        (404, json!({"error": "No node [nope.lab] found"}))
    );

    // The running task shows on its node.
    let r = s.v1_provision("slow1.lab", &json!({"os": "sle"})).await;
    let (_, t) = json_of(r).await;
    let (_, n) = s.get_json("/api/v1/nodes/slow1.lab").await;
    assert_eq!(n["active_task"], t["id"]);
    until("its boot record installs the image", async || {
        s.get_json("/api/v1/nodes/slow1.lab").await.1["os"] == IMAGE
    })
    .await;
    let (_, v) = s.get_json("/api/v1/nodes").await;
    assert_eq!(v["nodes"][6]["active_task"], t["id"]);
}

#[tokio::test]
async fn provision_task_and_log() {
    let fx = fixture();
    let s = Server::start(&fx, &[]);
    let r = s
        .v1_provision(
            "ok1.lab",
            &json!({"os": "sle", "extra_sls": ["ceph.repo", "x_y-1"]}),
        )
        .await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (code, t) = json_of(r).await;
    assert_eq!(code, 202);
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(location, s.u(&format!("/api/v1/tasks/{id}")));
    assert_eq!(t["node"], "ok1.lab");
    assert_eq!(t["os"], "sle");
    assert_eq!(t["state"], "running");
    assert_eq!(t["end_time"], Value::Null);
    assert_eq!(t["code"], Value::Null);

    let (code, done) = s.wait_task(&id).await;
    assert_eq!(code, 200, "{done}");
    let (code, t) = json_of(s.http.get(&location).send().await.unwrap()).await;
    assert_eq!(code, 200);
    assert_eq!(t["state"], "done");
    assert_eq!(t["code"], 200);
    assert_eq!(t["result"], "done");
    assert!(t["end_time"].as_i64().unwrap() >= t["start_time"].as_i64().unwrap());

    let (code, log) = s.get_json(&format!("/api/v1/tasks/{id}/log")).await;
    assert_eq!(code, 200);
    assert_eq!(log["id"], id.as_str());
    let text = log["log"].as_str().unwrap();
    assert!(text.contains("ceph.repo"), "{text}");
    let (_, compat) = s.get_json(&format!("/tasks/log/{id}")).await;
    assert_eq!(log["log"], compat["LogData"], "the compatible route's log");

    // A failed task (salt) and the filters.
    let failed = {
        let (_, t) = json_of(s.v1_provision("salt.lab", &json!({"os": "sle"})).await).await;
        t["id"].as_str().unwrap().to_owned()
    };
    s.wait_task(&failed).await;
    let ids = |v: &Value| -> Vec<String> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = s.get_json("/api/v1/tasks").await;
    assert_eq!(ids(&all), [id.clone(), failed.clone()], "oldest first");
    let (_, v) = s.get_json("/api/v1/tasks?state=failed").await;
    assert_eq!(ids(&v), std::slice::from_ref(&failed));
    assert_eq!(v["tasks"][0]["code"], 500);
    let (_, v) = s.get_json("/api/v1/tasks?state=done&node=ok1.lab").await;
    assert_eq!(ids(&v), std::slice::from_ref(&id));
    let (_, v) = s.get_json("/api/v1/tasks?node=ok2.lab").await;
    assert_eq!(ids(&v), Vec::<String>::new());
    let (_, v) = s.get_json("/api/v1/tasks?state=running").await;
    assert_eq!(ids(&v), Vec::<String>::new());

    // Refusals.
    for q in ["state=finished", "status=done", "node=a&node=b"] {
        let (code, e) = json_of(s.get(&format!("/api/v1/tasks?{q}")).await).await;
        assert_eq!(code, 400, "{q}: {e}");
        assert!(e["error"].as_str().unwrap().starts_with("bad query"), "{e}");
    }
    for path in ["/api/v1/tasks/nope", "/api/v1/tasks/nope/log"] {
        let (code, e) = json_of(s.get(path).await).await;
        assert_eq!(
            (code, e),
            (404, json!({"error": "Task \"nope\" is not found"}))
        );
    }
}

#[tokio::test]
async fn provision_refusals() {
    let fx = fixture();
    let s = Server::start(&fx, &[]);
    let cases = [
        (
            "nope.lab",
            json!({"os": "sle"}),
            404,
            "No node [nope.lab] found",
        ),
        ("ok1.lab", json!({"os": "nope"}), 404, "No os image [nope]"),
        ("ok1.lab", json!({"os": ""}), 404, "No OS string [] found"),
        // As `POST /node/provision` answers it.
        ("ok1.lab", json!({"os": "a/b"}), 404, "No os image [a/b]"),
        (
            "ok1.lab",
            json!({"os": "sle", "extra_sls": ["-r"]}),
            400,
            "`extra_sls`",
        ),
        (
            "ok1.lab",
            json!({"os": "sle", "extra_sls": ["a b"]}),
            400,
            "`extra_sls`",
        ),
        (
            "ok1.lab",
            json!({"os": "sle", "extra_sls": [""]}),
            400,
            "`extra_sls`",
        ),
        (
            "ok1.lab",
            json!({"os": "sle", "extra_sls": "core"}),
            400,
            "bad JSON body",
        ),
        ("ok1.lab", json!({"os": 1}), 400, "bad JSON body"),
        ("ok1.lab", json!({}), 400, "missing field `os`"),
        (
            "ok1.lab",
            json!({"os": "sle", "node": "x"}),
            400,
            "unknown field `node`",
        ),
        (
            "bad.lab",
            json!({"os": "sle"}),
            409,
            "node [bad.lab] is disabled",
        ),
    ];
    for (node, body, want, text) in cases {
        let (code, e) = json_of(s.v1_provision(node, &body).await).await;
        assert_eq!(code, want, "{node} {body}: {e}");
        let msg = e["error"].as_str().unwrap();
        assert!(msg.contains(text), "{node} {body}: {msg}");
    }
    let (_, e) = json_of(s.v1_provision("bad.lab", &json!({"os": "sle"})).await).await;
    assert_eq!(e["problems"][0]["field"], "mac", "{e}");

    // Not JSON: 415, whatever the body.
    let url = s.u("/api/v1/nodes/ok1.lab/provision");
    let r = s
        .http
        .post(&url)
        .form(&[("os", "sle")])
        .send()
        .await
        .unwrap();
    let (code, e) = json_of(r).await;
    assert_eq!(code, 415, "{e}");
    let r = s
        .http
        .post(&url)
        .body("{\"os\": \"sle\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let r = s
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"os\": ")
        .send()
        .await
        .unwrap();
    let (code, e) = json_of(r).await;
    assert_eq!(code, 400, "{e}");
    // Another verb than the route takes.
    let r = s.http.put(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // No refusal started a task.
    let (_, v) = s.get_json("/api/v1/tasks").await;
    assert_eq!(v["tasks"], json!([]));
}

#[tokio::test]
async fn dismiss() {
    let fx = fixture();
    let s = Server::start(&fx, &[]);
    let (_, t) = json_of(s.v1_provision("slow1.lab", &json!({"os": "sle"})).await).await;
    let (code, d) = json_of(s.v1_dismiss("slow1.lab").await).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["id"], t["id"]);
    assert_eq!(d["state"], "dismissed");
    assert_eq!(d["code"], 410);
    assert_eq!(d["result"], "Stop provisioning thread by request");
    let (_, n) = s.get_json("/api/v1/nodes/slow1.lab").await;
    assert_eq!(n["active_task"], Value::Null);
    assert_eq!(n["os"], "local", "a dismissed node boots its disk");
    let (_, v) = s.get_json("/api/v1/tasks?state=dismissed").await;
    assert_eq!(v["tasks"][0]["id"], t["id"]);

    let (code, e) = json_of(s.v1_dismiss("slow1.lab").await).await;
    assert_eq!(code, 404, "nothing runs: {e}");
    let (code, e) = json_of(s.v1_dismiss("nope.lab").await).await;
    assert_eq!(
        (code, e),
        (404, json!({"error": "No node [nope.lab] found"}))
    );

    // A new provision of a node dismisses its running one.
    let (_, a) = json_of(s.v1_provision("slow2.lab", &json!({"os": "sle"})).await).await;
    let (_, b) = json_of(s.v1_provision("slow2.lab", &json!({"os": "local"})).await).await;
    until("the first task dismissed", async || {
        let (_, t) = s
            .get_json(&format!("/api/v1/tasks/{}", a["id"].as_str().unwrap()))
            .await;
        t["state"] == "dismissed"
    })
    .await;
    let (_, n) = s.get_json("/api/v1/nodes/slow2.lab").await;
    assert_eq!(n["active_task"], b["id"]);
}

#[tokio::test]
async fn images() {
    let fx = fixture();
    // The fixture's `sle-15.6-1.0` is a hand-made dir (no manifest): not
    // listed. An add-image one with its OS identity:
    let dir = fx.path("tftp/leap-15.6-2.0");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({
        "name": "leap", "version": "15.6-2.0", "arch": "x86_64", "aliases": ["opensuse"],
        "kernel": "k", "initrd": "i.xz", "image": "d.xz",
        "files": [{"name": "k", "size": 3, "sha256": "aa"}, {"name": "d.xz", "size": 4, "sha256": "bb"}],
        "installed": "2026-01-01T00:00:00Z", "source": "/build",
        "os": {"id": "opensuse-leap", "version_id": "15.6", "image_id": "leap"}
    });
    std::fs::write(dir.join("image.json"), manifest.to_string()).unwrap();
    std::os::unix::fs::symlink("leap-15.6-2.0", fx.path("tftp/leap")).unwrap();
    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json("/api/v1/images").await;
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"images": [{
            "id": "leap-15.6-2.0", "name": "leap", "version": "15.6-2.0", "arch": "x86_64",
            "aliases": ["opensuse"], "current": true,
            "installed": "2026-01-01T00:00:00Z", "source": "/build",
            "kernel": "k", "initrd": "i.xz", "image": "d.xz", "size": 7,
            "files": [{"name": "k", "size": 3, "sha256": "aa"}, {"name": "d.xz", "size": 4, "sha256": "bb"}],
            "os": {"id": "opensuse-leap", "version_id": "15.6", "image_id": "leap"}
        }]})
    );
}

#[tokio::test]
async fn openapi_document() {
    let fx = fixture();
    let s = Server::start(&fx, &[]);
    let (code, doc) = json_of(s.get("/api/v1/openapi.json").await).await;
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths: Vec<(&str, Vec<&str>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| {
            (
                p.as_str(),
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        paths,
        [
            ("/api/v1/images", vec!["get"]),
            ("/api/v1/nodes", vec!["get"]),
            ("/api/v1/nodes/{node}", vec!["get"]),
            ("/api/v1/nodes/{node}/provision", vec!["post", "delete"]),
            ("/api/v1/openapi.json", vec!["get"]),
            ("/api/v1/reload", vec!["post"]),
            ("/api/v1/tasks", vec!["get"]),
            ("/api/v1/tasks/{id}", vec!["get"]),
            ("/api/v1/tasks/{id}/log", vec!["get"]),
        ]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    assert_eq!(
        doc["paths"]["/api/v1/nodes/{node}/provision"]["post"]["responses"]["202"]["links"]["GetTask"]
            ["parameters"]["id"],
        "$response.body#/id"
    );
    // Unknown routes under /api/v1: the compatible 404.
    let (code, e) = json_of(s.get("/api/v1/nope").await).await;
    assert_eq!(
        (code, e),
        (404, json!({"error": "No route for GET /api/v1/nope"}))
    );
}

/// Every v1 route, the OpenAPI document too, needs credentials under
/// `--htpasswd`.
#[tokio::test]
async fn v1_needs_credentials() {
    let fx = fixture();
    let hash = bcrypt::hash("v1-pw", 4).unwrap();
    std::fs::write(fx.path("htpasswd"), format!("admin:{hash}\n")).unwrap();
    let htpasswd = fx.path("htpasswd");
    let s = Server::start(&fx, &["--htpasswd", htpasswd.to_str().unwrap()]);
    let routes = [
        (reqwest::Method::GET, "/api/v1/openapi.json", 200),
        (reqwest::Method::GET, "/api/v1/nodes", 200),
        (reqwest::Method::GET, "/api/v1/nodes/ok1.lab", 200),
        (
            reqwest::Method::POST,
            "/api/v1/nodes/ok1.lab/provision",
            415,
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/nodes/ok1.lab/provision",
            404,
        ),
        (reqwest::Method::GET, "/api/v1/tasks", 200),
        (reqwest::Method::GET, "/api/v1/tasks/x", 404),
        (reqwest::Method::GET, "/api/v1/tasks/x/log", 404),
        (reqwest::Method::GET, "/api/v1/images", 200),
    ];
    for (method, path, with) in routes {
        let r = s
            .http
            .request(method.clone(), s.u(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{method} {path}");
        assert!(r.headers().contains_key("www-authenticate"));
        let r = s
            .http
            .request(method.clone(), s.u(path))
            .basic_auth("admin", Some("v1-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            with,
            "{method} {path} with credentials"
        );
    }
}
