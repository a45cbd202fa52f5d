//! Persistence behind one coarse, use-case-level trait.
