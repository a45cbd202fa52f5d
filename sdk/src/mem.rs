//! `memcmp` and `bcmp` for wasm, comparing eight bytes at a time.
//!
//! On `wasm32-unknown-unknown` these come from compiler-builtins, which compares one byte per loop
//! turn. Plugins compare short strings all the time (map keys, serde field names), and in a profile
//! of a typical action `memcmp` was the hottest guest function. compiler-builtins defines its
//! versions as weak symbols, so the ones here take their place at link time. The comparison itself
//! is plain Rust, built and tested on every target; only the exported symbols are wasm-only.

#![allow(
    unsafe_code,
    reason = "the C memory-comparison symbols take raw pointers; this module is their only implementation"
)]

/// Compare `n` bytes at `a` and `b` as unsigned bytes: negative, zero or positive like C's.
///
/// # Safety
/// `a` and `b` must be valid to read for `n` bytes.
#[cfg(any(test, target_arch = "wasm32"))]
pub(crate) unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, and both ranges are readable for `n` bytes (the caller's promise).
        let diff = unsafe { load8(a, i) ^ load8(b, i) };
        if diff != 0 {
            // Loaded little-endian, so the first differing byte holds the lowest set bit. wasm
            // has `ctz` but no byte swap, so this is cheaper than comparing big-endian words.
            let at = i + (diff.trailing_zeros() / 8) as usize;
            // SAFETY: `at < i + 8 <= n`.
            return unsafe { i32::from(*a.add(at)) - i32::from(*b.add(at)) };
        }
        i += 8;
    }
    while i < n {
        // SAFETY: `i < n`, as above.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Eight bytes at `p + i`, little-endian.
///
/// # Safety
/// `p + i .. p + i + 8` must be readable.
#[cfg(any(test, target_arch = "wasm32"))]
unsafe fn load8(p: *const u8, i: usize) -> u64 {
    // SAFETY: the caller's promise.
    u64::from_le(unsafe { p.add(i).cast::<u64>().read_unaligned() })
}

#[cfg(target_arch = "wasm32")]
#[allow(
    unreachable_pub,
    reason = "exported by symbol name to the linker, not by path"
)]
mod symbols {
    /// C's `memcmp`.
    ///
    /// # Safety
    /// `a` and `b` must be valid to read for `n` bytes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the same contract.
        unsafe { super::compare(a, b, n) }
    }

    /// C's `bcmp`: zero when the bytes are equal.
    ///
    /// # Safety
    /// As `memcmp`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: the same contract.
        unsafe { super::compare(a, b, n) }
    }
}

#[cfg(test)]
mod tests {
    use super::compare;
    use crate::rng::Rng;

    fn cmp(a: &[u8], b: &[u8]) -> i32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: both slices hold `len` bytes.
        unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }
    }

    #[test]
    fn orders_like_slice_comparison_for_every_length_and_difference() {
        let mut rng = Rng::new(11);
        for len in 0..40usize {
            for _ in 0..200 {
                // Few distinct byte values, so equal prefixes of every length are common.
                let a: Vec<u8> = (0..len).map(|_| rng.below(3) as u8 * 127).collect();
                let mut b = a.clone();
                if len > 0 && rng.below(4) > 0 {
                    b[rng.below(len as u64) as usize] = rng.below(256) as u8;
                }
                assert_eq!(cmp(&a, &b).signum(), a.cmp(&b) as i32, "{a:?} vs {b:?}");
            }
        }
    }
}
