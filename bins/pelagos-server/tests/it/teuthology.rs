//! teuthology's own `pelagos` provisioner client (PyPI `teuthology`, unmodified
//! but for shorter poll sleeps) against the real server in fast simulation:
//! plain HTTP, with `--htpasswd` (credentials in the endpoint URL), and over
//! HTTPS with the lab CA made trusted as docs/SECURITY.md says.

#![allow(clippy::print_stderr)]

use pelagos_testkit::{KillOnDrop, free_port, venv_python};
use std::ffi::OsString;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DOMAIN: &str = "teuth.test";
const SHORTS: [&str; 5] = ["tc1", "tc2", "tc3", "tc4", "tc5"];

fn lab_json() -> String {
    let nodes: Vec<String> = SHORTS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"node": "{s}.{DOMAIN}", "mac": "52:54:00:aa:00:{i:02x}", "ip": "10.9.0.{n}",
                   "ip_type": "dynamic", "bmc_ip": "10.9.1.{n}", "bmc_ip_type": "static",
                   "t_machine_type": "tc-a", "t_exclude": "no"}}"#,
                n = i + 10
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "bmc-secret-teuth", "target_node_password": "node-secret-teuth",
            "default_pxe_server": "127.0.0.1", "domain": "{DOMAIN}", "sls_list": "",
            "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}

/// A lab of five nodes and a hand-made image dir, in a temp dir.
fn lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.json"), lab_json()).unwrap();
    // A hand-made image dir named as teuthology names an OS: <os_type>-<os_version>.
    let image = dir.path().join("tftp/opensuse-15.2");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::write(image.join("pxeboot.kernel"), b"kernel").unwrap();
    std::fs::write(image.join("pxeboot.initrd.xz"), b"initrd").unwrap();
    dir
}

/// The server on `port` over the lab in `dir`, its stderr in
/// `<dir>/server.log`; returns once it accepts connections.
fn start_server(dir: &Path, port: u16, extra: &[OsString]) -> KillOnDrop {
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(dir.join("lab.json"))
            .arg("--tftpdir")
            .arg(dir.join("tftp"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--simulation=fast")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start pelagos-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            let err = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("pelagos-server exited with {status}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "pelagos-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// One of the client scripts (tests/teuthology/) with the venv's Python,
/// `env` added to its environment; its output, printed.
fn client(script: &str, args: &[&str], env: &[(&str, OsString)]) -> Output {
    let out = Command::new(venv_python(&[]))
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/teuthology")
                .join(script),
        )
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run a teuthology client script");
    eprintln!(
        "{script} {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `client_check.py`: teuthology's flows (get_types, create() until done,
/// four in parallel, park with wait=False) all pass against `endpoint`.
fn assert_client_works(endpoint: &str, env: &[(&str, OsString)]) -> String {
    let out = client(
        "client_check.py",
        &[endpoint, DOMAIN, "opensuse", "15.2", &SHORTS.join(",")],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "teuthology client checks failed:\n{stdout}\n{stderr}"
    );
    for secret in ["bmc-secret-teuth", "node-secret-teuth"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked to the client"
        );
    }
    format!("{stdout}{stderr}")
}

/// `client_refused.py`: every call of the client against `endpoint` fails,
/// `how` = `401` or `certificate`.
fn assert_client_refused(endpoint: &str, how: &str, env: &[(&str, OsString)]) {
    let out = client(
        "client_refused.py",
        &[endpoint, how, DOMAIN, "opensuse", "15.2", SHORTS[0]],
        env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("REFUSED AS EXPECTED"),
        "the client against {endpoint} was not refused ({how}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const USER: &str = "teuthology";
/// With an `@`: percent-encoded in the endpoint URL (`%40`), as the docs say.
const PASSWORD: &str = "teuth@Pass-2024";
const PASSWORD_IN_URL: &str = "teuth%40Pass-2024";

/// An htpasswd file with `USER` (a bcrypt entry made by the bcrypt crate).
fn htpasswd(dir: &Path) -> (PathBuf, String) {
    let path = dir.join("htpasswd");
    let hash = bcrypt::hash(PASSWORD, 6).unwrap();
    std::fs::write(&path, format!("{USER}:{hash}\n")).unwrap();
    (path, hash)
}

/// Neither the password nor the hash is in the server's log.
fn assert_log_clean(dir: &Path, hash: &str) {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    for s in [PASSWORD, PASSWORD_IN_URL, hash, &hash[7..]] {
        assert!(!log.contains(s), "the server log shows {s}:\n{log}");
    }
}

#[test]
fn teuthology_client_drives_the_server() {
    let dir = lab();
    let port = free_port();
    let _server = start_server(dir.path(), port, &[]);
    assert_client_works(&format!("http://127.0.0.1:{port}/"), &[]);
}

/// With `--htpasswd`, the credentials go in the endpoint URL
/// (`http://user:pass@host:port/`): requests turns them into Basic auth on
/// every request the client makes to the endpoint, while it polls the
/// absolute `Location` (no credentials) of `/tasks/status/<id>`, which is
/// open. Without credentials, or with a wrong password, every call is 401.
#[test]
fn teuthology_client_with_basic_auth() {
    let dir = lab();
    let (file, hash) = htpasswd(dir.path());
    let port = free_port();
    let mut server = start_server(dir.path(), port, &["--htpasswd".into(), file.into()]);
    assert_client_works(
        &format!("http://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{port}/"),
        &[],
    );
    assert_client_refused(&format!("http://127.0.0.1:{port}/"), "401", &[]);
    assert_client_refused(
        &format!("http://{USER}:not-the-password@127.0.0.1:{port}/"),
        "401",
        &[],
    );
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert_log_clean(dir.path(), &hash);
}

/// `openssl` with `args` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is not installed: run scripts/install-test-deps.sh");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A test lab CA (`ca.pem`) and a server certificate for 127.0.0.1 and
/// localhost signed by it (`server.pem`, `server.key`), in `dir`.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
        &["-subj", "/CN=Pelagos Test Lab CA"],
        &["-addext", "basicConstraints=critical,CA:TRUE"],
        &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]
    .concat();
    openssl(dir, &ca);
    let csr = [
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat();
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n\
         subjectKeyIdentifier=hash\n\
         authorityKeyIdentifier=keyid,issuer\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// HTTPS (`--tls-cert`/`--tls-key`) and `--htpasswd` together, the lab CA
/// made trusted the way docs/SECURITY.md says.
///
/// teuthology's client sends through a bare `requests.Session().send(prepared)`
/// (teuthology/provision/pelagos.py `do_request`). `Session.send` verifies the
/// server certificate with requests' default bundle, `certifi.where()`; only
/// `Session.request` goes through `merge_environment_settings`, the one
/// place `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE` are read (requests/sessions.py).
/// So the environment variable does not help (checked below), and the lab CA
/// must be appended to the file `python -m certifi` prints in teuthology's
/// Python environment. The shared test venv's certifi is never touched: its
/// package is copied into a temp dir put first on `PYTHONPATH`, where the
/// documented command, `cat ca.pem >> "$(python -m certifi)"`, then appends
/// to the copy's bundle.
#[test]
fn teuthology_client_over_https_with_the_lab_ca_in_certifi() {
    let dir = lab();
    let d = dir.path();
    make_certs(d);
    let (file, hash) = htpasswd(d);
    let port = free_port();
    let mut server = start_server(
        d,
        port,
        &[
            "--htpasswd".into(),
            file.into(),
            "--tls-cert".into(),
            d.join("server.pem").into(),
            "--tls-key".into(),
            d.join("server.key").into(),
        ],
    );
    let endpoint = format!("https://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{port}/");

    // A private copy of the venv's certifi package, first on PYTHONPATH.
    let python = venv_python(&[]);
    let out = Command::new(&python)
        .args([
            "-c",
            "import certifi, os; print(os.path.dirname(certifi.__file__))",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let venv_certifi = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let venv_bundle = std::fs::read(venv_certifi.join("cacert.pem")).unwrap();
    let pyroot = d.join("pyroot");
    std::fs::create_dir_all(pyroot.join("certifi")).unwrap();
    for e in std::fs::read_dir(&venv_certifi).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, pyroot.join("certifi").join(p.file_name().unwrap())).unwrap();
        }
    }
    let bin = python.parent().unwrap().to_owned();
    let mut path = OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = [
        ("PYTHONPATH", pyroot.clone().into_os_string()),
        ("PATH", path),
    ];
    let where_ = Command::new("python")
        .args(["-m", "certifi"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let where_ = String::from_utf8(where_.stdout).unwrap();
    assert!(
        Path::new(where_.trim()).starts_with(&pyroot),
        "`python -m certifi` names {where_}, not the copy in {}",
        pyroot.display()
    );

    // Not trusted yet: a certificate error, REQUESTS_CA_BUNDLE or not.
    assert_client_refused(&endpoint, "certificate", &env);
    let mut with_var = env.to_vec();
    with_var.push(("REQUESTS_CA_BUNDLE", d.join("ca.pem").into_os_string()));
    assert_client_refused(&endpoint, "certificate", &with_var);

    // The documented command, in the client's Python environment.
    let out = Command::new("sh")
        .args(["-c", r#"cat ca.pem >> "$(python -m certifi)""#])
        .current_dir(d)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ca = std::fs::read_to_string(d.join("ca.pem")).unwrap();
    assert!(
        std::fs::read_to_string(where_.trim())
            .unwrap()
            .ends_with(&ca)
    );

    let text = assert_client_works(&endpoint, &env);
    assert!(
        text.contains(&format!("https://127.0.0.1:{port}/tasks/status/")),
        "the client did not poll an https Location"
    );
    assert_client_refused(&format!("https://127.0.0.1:{port}/"), "401", &env);

    assert_eq!(
        std::fs::read(venv_certifi.join("cacert.pem")).unwrap(),
        venv_bundle,
        "the shared venv's certifi bundle changed"
    );
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert_log_clean(d, &hash);
}
