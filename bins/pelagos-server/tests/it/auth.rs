//! `--htpasswd`: HTTP Basic authentication on the real binary. Every route
//! that is not open answers 401 without valid credentials and changes
//! nothing; the open ones (`/`, `/version`, `/tasks/status/<id>`, the image
//! route) answer as before; failed logins are logged with the client
//! address, never with the password; no hash or password shows anywhere.

use crate::{Fixture, IMAGE, Server, read, until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const USER: &str = "labadmin";
pub const PASSWORD: &str = "Corr3ct-Horse-Battery";
const WRONG: &str = "Wr0ng-Guess-4711";
const REALM: &str = "Basic realm=\"pelagos\"";

/// An htpasswd file made by Apache's own `htpasswd -cB` (as docs/SECURITY.md
/// says) holding `USER`; its path and its hash.
pub fn htpasswd(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-cbB", "-C", "6"])
        .arg(&path)
        .args([USER, PASSWORD])
        .output()
        .expect("htpasswd (apache2-utils) is not installed: run scripts/install-test-deps.sh");
    assert!(out.status.success(), "htpasswd -cbB: {out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let hash = text.trim().split_once(':').unwrap().1.to_owned();
    assert!(hash.starts_with("$2y$06$"), "{text}");
    (path, hash)
}

/// The server with `--htpasswd` and its stderr in `<fixture>/server.log`.
fn start(fx: &Fixture, htpasswd: &Path) -> Server {
    let mut cmd = fx.server_command();
    cmd.arg("--htpasswd")
        .arg(htpasswd)
        .env("RUST_LOG", "info,pelagos_server=debug");
    Server::spawn(cmd, Some(&fx.path("server.log")))
}

/// Every file under `dir` with its contents, sorted.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Status, `WWW-Authenticate` and body; the body must not show a secret.
async fn answer(r: reqwest::Response, secrets: &[&str]) -> (u16, Option<String>, String) {
    let code = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let headers = format!("{:?}", r.headers());
    let body = r.text().await.unwrap();
    for s in secrets {
        assert!(
            !body.contains(s) && !headers.contains(s),
            "an answer shows {s}: {headers} {body}"
        );
    }
    (code, www, body)
}

enum Creds<'a> {
    None,
    Basic(&'a str, &'a str),
    Raw(&'a str),
}

async fn send(s: &Server, method: &str, path: &str, creds: &Creds<'_>) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = s.http.request(method.clone(), s.u(path));
    if method == reqwest::Method::POST {
        rb = rb.form(&[("node", "ok1.lab"), ("os", "sle")]);
    }
    rb = match creds {
        Creds::None => rb,
        Creds::Basic(u, p) => rb.basic_auth(u, Some(p)),
        Creds::Raw(h) => rb.header("authorization", *h),
    };
    rb.send().await.unwrap()
}

#[tokio::test]
async fn htpasswd_protects_every_route_but_the_open_ones() {
    let fx = Fixture::new();
    let (file, hash) = htpasswd(fx.dir.path());
    let secrets = [PASSWORD, WRONG, hash.as_str(), &hash[7..]];
    let s = start(&fx, &file);
    let tftp_before = snapshot(&fx.path("tftp"));

    let some_id = "0123456789abcdef0123456789abcdef";
    let protected = [
        ("GET", "/nodes".to_owned()),
        ("GET", "/node/ok1.lab".to_owned()),
        ("GET", "/check_image/sle".to_owned()),
        ("GET", "/node/bootrecord/ok1.lab/sle".to_owned()),
        ("GET", "/node/rmbootrecord/ok1.lab".to_owned()),
        ("POST", "/node/provision".to_owned()),
        ("POST", "/node/dismiss".to_owned()),
        ("POST", "/tasks/node/dismiss".to_owned()),
        ("GET", "/tasks/statuses".to_owned()),
        ("GET", format!("/tasks/log/{some_id}")),
        ("GET", "/no/such/route".to_owned()),
        ("POST", "/version".to_owned()),
        ("DELETE", "/nodes".to_owned()),
        ("POST", format!("/tasks/status/{some_id}")),
        ("PUT", format!("/images/{IMAGE}/{IMAGE}.xz")),
    ];
    let upper = USER.to_uppercase();
    let short = &PASSWORD[..PASSWORD.len() - 1];
    let wrong_creds = [
        Creds::None,
        Creds::Basic(USER, WRONG),
        Creds::Basic("nobody", PASSWORD),
        Creds::Basic(&upper, PASSWORD),
        Creds::Basic(USER, short),
        Creds::Raw("Bearer abc"),
        Creds::Raw("Basic !!!"),
        Creds::Raw("Basic bGFiYWRtaW4="), // "labadmin", no colon
    ];
    for (method, path) in &protected {
        for creds in &wrong_creds {
            let (code, www, body) = answer(send(&s, method, path, creds).await, &secrets).await;
            assert_eq!(code, 401, "{method} {path}: {body}");
            assert_eq!(www.as_deref(), Some(REALM), "{method} {path}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["error"].is_string(), "{method} {path}: {body}");
        }
    }
    assert_eq!(
        snapshot(&fx.path("tftp")),
        tftp_before,
        "a refused request changed the TFTP root"
    );

    // Open without credentials.
    let (code, _, body) = answer(send(&s, "GET", "/", &Creds::None).await, &secrets).await;
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = answer(send(&s, "GET", "/version", &Creds::None).await, &secrets).await;
    assert_eq!((code, body.contains("pelagos")), (200, true), "{body}");
    assert_eq!(
        send(&s, "HEAD", "/version", &Creds::None).await.status(),
        200
    );
    let image = format!("/images/{IMAGE}/{IMAGE}.xz");
    let (code, _, body) = answer(send(&s, "GET", &image, &Creds::None).await, &secrets).await;
    assert_eq!((code, body.as_str()), (200, "disk"));
    let (code, _, body) = answer(
        send(&s, "GET", &format!("/tasks/status/{some_id}"), &Creds::None).await,
        &secrets,
    )
    .await;
    assert_eq!(code, 404, "an unknown task, not a login prompt: {body}");

    // With the credentials: nothing happened before, everything works now.
    let good = Creds::Basic(USER, PASSWORD);
    let (code, _, body) = answer(send(&s, "GET", "/tasks/statuses", &good).await, &secrets).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({}),
        "a refused request made a task"
    );
    let (code, _, body) = answer(send(&s, "GET", "/nodes", &good).await, &secrets).await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["nodes"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let (code, _, body) = answer(
        send(&s, "GET", "/node/bootrecord/ok2.lab/sle", &good).await,
        &secrets,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        read(&fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-02")).contains(IMAGE),
        "the boot record was not written"
    );

    let r = send(&s, "POST", "/node/provision", &good).await;
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let id = r.headers()["taskid"].to_str().unwrap().to_owned();
    answer(r, &secrets).await;
    assert_eq!(loc, s.u(&format!("/tasks/status/{id}")));
    // teuthology polls the Location as it is: no credentials.
    let mut last = 0;
    until("the task done, polled without credentials", async || {
        last = s.http.get(&loc).send().await.unwrap().status().as_u16();
        last != 202
    })
    .await;
    assert_eq!(last, 200);
    let (code, _, _) = answer(
        send(&s, "GET", &format!("/tasks/log/{id}"), &Creds::None).await,
        &secrets,
    )
    .await;
    assert_eq!(code, 401, "a task log needs credentials");
    let (code, _, body) = answer(
        send(&s, "GET", &format!("/tasks/log/{id}"), &good).await,
        &secrets,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = answer(send(&s, "GET", "/no/such/route", &good).await, &secrets).await;
    assert_eq!(code, 404, "an unknown path with credentials");

    // Failed logins in the server's log: the client address and the user
    // tried, never a password or the hash.
    s.terminate();
    let log = read(&fx.path("server.log"));
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert!(
        failed
            .iter()
            .any(|l| l.contains("127.0.0.1:") && l.contains("user=nobody")),
        "no failed login with client and user logged:\n{log}"
    );
    assert!(
        failed.iter().any(|l| l.contains(&format!("user={USER}"))),
        "{log}"
    );
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "the server log shows {secret}:\n{log}"
        );
    }
}

/// An htpasswd entry that is not bcrypt stops the server at start, naming
/// the file, line and user, not the hash.
#[test]
fn a_non_bcrypt_htpasswd_is_refused_at_start() {
    let fx = Fixture::new();
    let file = fx.path("htpasswd");
    let md5 = Command::new("htpasswd")
        .args(["-nbm", "olduser", PASSWORD])
        .output()
        .expect("htpasswd (apache2-utils) is not installed: run scripts/install-test-deps.sh");
    let md5 = String::from_utf8(md5.stdout).unwrap();
    let (_, hash) = htpasswd(fx.dir.path());
    std::fs::write(&file, format!("# lab\n{USER}:{hash}\n{}\n", md5.trim())).unwrap();
    let out = fx
        .server_command()
        .args(["--listen", "127.0.0.1:0", "--htpasswd"])
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an MD5 entry: {err}");
    assert!(
        err.contains(&format!("{}:3:", file.display())) && err.contains("\"olduser\""),
        "{err}"
    );
    assert!(
        err.contains("$apr1$") && err.contains("htpasswd -B"),
        "{err}"
    );
    let md5_hash = md5.trim().split_once(':').unwrap().1;
    assert!(
        !err.contains(md5_hash) && !err.contains(&hash[7..]),
        "{err}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it listened"
    );
}
