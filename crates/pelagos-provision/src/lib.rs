//! Pelagos provisioning task engine, drivers and task state store.

pub mod readiness;
pub mod salt;
