//! Pelagos provisioning task engine, drivers and task state store.
