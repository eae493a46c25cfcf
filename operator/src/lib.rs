//! The `jtp` program: the Kubernetes operator, the standalone runner with its local executor, and
//! the small commands around them (preview, crd, migrate).

pub mod alerts;
pub mod backoff;
pub mod controller;
pub mod convert;
pub mod portal;
pub mod preview;
pub mod process;
pub mod retention;
pub mod standalone;
pub mod status;

/// The run policy's scenario table (shared with `crds`), run through both modes' adapters.
#[cfg(test)]
#[path = "../../crds/tests/scenarios/mod.rs"]
mod policy_scenarios;
