//! The cultivation plugin (being written).
