//! # telemetry-agg
//!
//! Not built yet: this crate is a placeholder in the workspace layout (see docs/architecture.md)
//! and exports nothing.
#![deny(missing_docs)]
