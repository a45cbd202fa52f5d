//! The dungeon plugin (being written).
