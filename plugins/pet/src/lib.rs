//! The pet plugin (being written).
