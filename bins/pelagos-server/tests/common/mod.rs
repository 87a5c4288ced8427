//! Shared by pelagos-server's test binaries (`it`, `whole_path`,
//! `teuthology`): the started server's guard and its address.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

/// A child process killed (and reaped) on drop, on failure too.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The URL a server started with `--listen 127.0.0.1:0` and a piped stdout
/// prints (`pelagos-server listening on <url>`), or `None` if it has not
/// within `timeout`. Takes the child's stdout.
pub fn listening_url(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("pelagos-server listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}
