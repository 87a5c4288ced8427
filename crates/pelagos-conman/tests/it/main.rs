//! Integration tests of pelagos-conman against a real conmand (Debian
//! `conman` 0.2.7) whose console is a unix socket served by the test.

mod conmand;
mod peer;
