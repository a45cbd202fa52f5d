//! The alchemy plugin (being written).
