//! The equipment plugin (being written).
