//! Standalone mode: the original system rebuilt on one machine — a database-backed runner that
//! runs scripts as local processes and records their output, with the portal on top.

pub mod executor;
pub mod plan;
