//! Pub/sub: per-player and global channels, over Redis or in-process.
