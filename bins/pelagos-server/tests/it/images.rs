//! The image tree over HTTP: exact bytes, HEAD, Range, 404s, traversal and
//! symlink escapes refused, no listing, and the boot record's image URL.

use crate::{Fixture, IMAGE, LAB, Server, read};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// Marker in every file the image route must never serve.
const SECRET: &str = "TOP-SECRET-NOT-AN-IMAGE";

/// Pseudo-random bytes, several read chunks long, odd length.
pub fn image_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The fixture with the pxe server on loopback, an image of `len` bytes and
/// things the route must refuse: records, top-level files, hidden dirs and
/// symlinks out of the tree.
fn fixture(len: usize) -> (Fixture, Vec<u8>) {
    let fx = Fixture::new();
    std::fs::write(fx.path("lab.json"), LAB.replace("10.0.0.254", "127.0.0.1")).unwrap();
    let tftp = fx.path("tftp");
    let img = image_bytes(len, 7);
    let dir = tftp.join(IMAGE);
    std::fs::write(dir.join(format!("{IMAGE}.xz")), &img).unwrap();
    let secret = fx.path("secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::create_dir_all(tftp.join("pxelinux.cfg")).unwrap();
    std::fs::write(tftp.join("pxelinux.cfg/default"), SECRET).unwrap();
    std::fs::write(tftp.join("top.txt"), SECRET).unwrap();
    std::fs::create_dir_all(tftp.join(".staging-1/x")).unwrap();
    std::fs::write(tftp.join(".staging-1/x/f"), SECRET).unwrap();
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, tftp.join(name)).unwrap();
    };
    link(Path::new("../../secret.txt"), &format!("{IMAGE}/escape"));
    link(&secret, &format!("{IMAGE}/abs"));
    link(
        Path::new("../pxelinux.cfg/default"),
        &format!("{IMAGE}/rec"),
    );
    link(Path::new("../top.txt"), &format!("{IMAGE}/top"));
    link(fx.dir.path(), "evil");
    // The escapes are real: read through the file system they leak.
    for l in ["escape", "abs", "rec", "top"] {
        assert_eq!(read(&tftp.join(IMAGE).join(l)), SECRET, "{l}");
    }
    assert_eq!(read(&tftp.join("evil/secret.txt")), SECRET);
    (fx, img)
}

/// One raw HTTP/1.1 request, the path sent exactly as given (an HTTP
/// client library would normalise `..` away before sending).
fn raw(server: &Server, method: &str, path: &str) -> (u16, String) {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {path}: {text:?}"));
    (code, text)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn image_files_exact_bytes_head_and_ranges() {
    // Bigger than the server's 1 MiB read chunk, odd length.
    let (fx, img) = fixture(3 * 1024 * 1024 + 17);
    let s = Server::start(&fx, &[]);
    let len = img.len();
    let path = format!("/images/{IMAGE}/{IMAGE}.xz");

    let r = s.get(&path).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), len.to_string());
    assert_eq!(header(&r, "accept-ranges"), "bytes");
    assert!(r.bytes().await.unwrap() == img, "GET bytes differ");

    // The `sle` symlink to the current version works as a dir.
    let r = s.get(&format!("/images/sle/{IMAGE}.xz")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == img);

    let r = s.http.head(s.u(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), len.to_string());
    assert!(r.bytes().await.unwrap().is_empty());

    let range = |spec: &str| {
        s.http
            .get(s.u(&path))
            .header("range", format!("bytes={spec}"))
            .send()
    };
    let r = range("100-199").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes 100-199/{len}"));
    assert_eq!(header(&r, "content-length"), "100");
    assert!(r.bytes().await.unwrap() == img[100..200]);
    // Across a read-chunk boundary, open-ended, and a suffix.
    let from = 1024 * 1024 - 5;
    let r = range(&format!("{from}-")).await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {from}-{}/{len}", len - 1)
    );
    assert!(r.bytes().await.unwrap() == img[from..]);
    let r = range("-10").await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {}-{}/{len}", len - 10, len - 1)
    );
    assert!(r.bytes().await.unwrap() == img[len - 10..]);
    let r = range(&format!("{len}-")).await.unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), format!("bytes */{len}"));

    let r = s.get(&format!("/images/{IMAGE}/nosuch.xz")).await;
    assert_eq!(r.status(), 404);
    let r = s.get("/images/nosuch-1.0/x.xz").await;
    assert_eq!(r.status(), 404);
    // Read-only.
    let r = s.http.put(s.u(&path)).body("x").send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = s.http.delete(s.u(&path)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(std::fs::read(fx.path(&format!("tftp/{IMAGE}/{IMAGE}.xz"))).unwrap() == img);
}

#[tokio::test]
async fn traversal_escapes_and_listings_are_refused() {
    let (fx, _) = fixture(1000);
    let s = Server::start(&fx, &[]);
    // The route works at all, so the refusals below mean something.
    let (code, _) = raw(&s, "GET", &format!("/images/{IMAGE}/{IMAGE}.xz"));
    assert_eq!(code, 200);

    let attempts = [
        "/images/../lab.json",
        "/images/../secret.txt",
        "/images/%2e%2e/secret.txt",
        "/images/%2E%2E/secret.txt",
        "/images/..%2fsecret.txt",
        "/images/%2e%2e%2fsecret.txt",
        "/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/images/sle-15.6-1.0/../../secret.txt",
        "/images/sle-15.6-1.0/%2e%2e/%2e%2e/secret.txt",
        "/images/sle-15.6-1.0/..%5c..%5csecret.txt",
        "/images//etc/passwd",
        "/images/%2fetc%2fpasswd",
        "/images/sle-15.6-1.0//etc/passwd",
        // Symlinks pointing out of the tree or into the records.
        "/images/sle-15.6-1.0/escape",
        "/images/sle-15.6-1.0/abs",
        "/images/sle-15.6-1.0/rec",
        "/images/sle-15.6-1.0/top",
        "/images/evil/secret.txt",
        // Not image dirs: records, top-level files, staging.
        "/images/pxelinux.cfg/default",
        "/images/top.txt",
        "/images/.staging-1/x/f",
        "/images/%2estaging-1/x/f",
    ];
    for path in attempts {
        let (code, text) = raw(&s, "GET", path);
        assert!(code == 400 || code == 404, "{path}: {code}\n{text}");
        assert!(!text.contains(SECRET), "{path} leaked:\n{text}");
        assert!(!text.contains("very-secret"), "{path} leaked lab.json");
        assert!(!text.contains("root:"), "{path} leaked /etc/passwd");
        let (code, text) = raw(&s, "HEAD", path);
        assert!(code == 400 || code == 404, "HEAD {path}: {code}");
        assert!(!text.contains(SECRET));
    }
    // Traversal by name is a 400 naming the problem.
    let (code, text) = raw(&s, "GET", "/images/%2e%2e/secret.txt");
    assert_eq!(code, 400);
    assert!(text.contains("'..'"), "{text}");

    // No directory listing anywhere.
    for path in [
        "/images",
        "/images/",
        &format!("/images/{IMAGE}"),
        &format!("/images/{IMAGE}/"),
        "/images/sle/",
        "/images/pxelinux.cfg/",
    ] {
        let (code, text) = raw(&s, "GET", path);
        assert_eq!(code, 404, "{path}\n{text}");
        assert!(
            !text.contains(&format!("{IMAGE}.xz")),
            "{path} lists:\n{text}"
        );
    }
}

/// The image URL in a node's boot record, from its `APPEND` line.
pub fn record_image_url(record: &str) -> String {
    record
        .split_whitespace()
        .find_map(|w| w.strip_prefix("rd.kiwi.install.image="))
        .unwrap_or_else(|| panic!("no image URL in record:\n{record}"))
        .to_owned()
}

#[tokio::test]
async fn record_names_a_url_the_server_serves() {
    let (fx, img) = fixture(200_000);
    let s = Server::start(&fx, &[]);
    let (code, v) = s.get_json("/node/bootrecord/ok1.lab/sle").await;
    assert_eq!(code, 200, "{v}");
    let record = read(&fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01"));
    let url = record_image_url(&record);
    assert_eq!(url, format!("{}/images/{IMAGE}/{IMAGE}.xz", s.url));
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == img);
    drop(s);

    // Another route: records follow it, the default path is gone.
    let s = Server::start(&fx, &["--image-route", "/boot/img/"]);
    let (code, _) = s.get_json("/node/bootrecord/ok1.lab/sle").await;
    assert_eq!(code, 200);
    let url = record_image_url(&read(&fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01")));
    assert_eq!(url, format!("{}/boot/img/{IMAGE}/{IMAGE}.xz", s.url));
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap() == img);
    assert_eq!(
        s.get(&format!("/images/{IMAGE}/{IMAGE}.xz")).await.status(),
        404
    );
    drop(s);

    // A separate web server: the lab's URL in records, nothing served here.
    std::fs::write(
        fx.path("lab.json"),
        LAB.replace(
            r#""sls_list": "core","#,
            r#""sls_list": "core", "pxe": {"image_base_url": "http://web.lab/tftp/"},"#,
        ),
    )
    .unwrap();
    let s = Server::start(&fx, &["--image-route", "none"]);
    let (code, _) = s.get_json("/node/bootrecord/ok1.lab/sle").await;
    assert_eq!(code, 200);
    let url = record_image_url(&read(&fx.path("tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-01")));
    assert_eq!(url, format!("http://web.lab/tftp/{IMAGE}/{IMAGE}.xz"));
    assert_eq!(
        s.get(&format!("/images/{IMAGE}/{IMAGE}.xz")).await.status(),
        404
    );
}

#[test]
fn bad_image_routes_are_refused_at_start() {
    let fx = Fixture::new();
    for bad in ["/tasks", "/a/../b", "/"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(fx.path("lab.json"))
            .arg("--tftpdir")
            .arg(fx.path("tftp"))
            .args(["--listen", "127.0.0.1:0", "--image-route", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--image-route"), "{bad}: {err}");
    }
}
