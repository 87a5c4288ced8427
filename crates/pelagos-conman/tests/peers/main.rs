//! Integration tests of pelagos-conman against a real conmand (Debian
//! `conman` 0.2.7, started by `pelagos_testkit::conmand`) whose console is a
//! unix socket served by the test.
//!
//! - `conmand`: the console watcher following a real conmand's log: each
//!   boot line as the last meaningful line, a stall when the node goes
//!   quiet, log rotation, and make-cfgs' conman.conf naming the logs where
//!   the watcher looks.

mod conmand;
