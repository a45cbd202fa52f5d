//! A deterministic random number generator seeded from `Call::seed`.
//!
//! xoshiro256** seeded through SplitMix64: fast, small, and the same sequence on every platform, so a
//! logged action replays bit for bit. It is the only randomness a plugin has; the SDK pulls in no
//! `getrandom`, and the host links no import that could provide ambient entropy.

/// The plugin's random source. Create one per call with [`Rng::new`] (the SDK's `Ctx` does this).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for `seed`; equal seeds give equal sequences.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        Self {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A float uniformly in `[0, 1)` with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A whole number uniformly in `[0, n)`, without modulo bias; `0` when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Lemire's multiply-and-reject.
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as u64;
            }
        }
    }

    /// A whole number uniformly in `[lo, hi]` (inclusive); `lo` when `hi < lo`.
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi as i128 - lo as i128 + 1) as u128;
        if span > u64::MAX as u128 {
            return self.next_u64() as i64;
        }
        (lo as i128 + self.below(span as u64) as i128) as i64
    }

    /// A float uniformly in `[lo, hi)`.
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// `true` with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let i = self.below(items.len() as u64) as usize;
        items.get(i)
    }

    /// An index chosen with probability proportional to its weight. Negative and NaN weights count
    /// as zero; `None` when no weight is positive.
    pub fn weighted(&mut self, weights: &[f64]) -> Option<usize> {
        let clean = |w: f64| if w > 0.0 { w } else { 0.0 };
        let total: f64 = weights.iter().copied().map(clean).sum();
        if total <= 0.0 || !total.is_finite() {
            return None;
        }
        let mut target = self.next_f64() * total;
        let mut last = None;
        for (i, w) in weights.iter().copied().map(clean).enumerate() {
            if w <= 0.0 {
                continue;
            }
            if target < w {
                return Some(i);
            }
            target -= w;
            last = Some(i);
        }
        // Rounding can leave a sliver past the last bucket; it belongs to the last positive weight.
        last
    }

    /// A fresh 128-bit id as 32 lowercase hex digits, for new entities.
    pub fn id(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// Shuffle a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_different_seed_different() {
        let a: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..8)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let mut c = Rng::new(43);
        assert_eq!(a, b);
        assert_ne!(a[0], c.next_u64());
    }

    #[test]
    fn sequence_is_pinned_across_platforms() {
        // Changing the generator would break replay of logged actions; this pins its output.
        let mut r = Rng::new(0);
        let first = r.next_u64();
        let mut again = Rng::new(0);
        assert_eq!(first, again.next_u64());
        assert_eq!(format!("{first:016x}"), PINNED_SEED0_FIRST);
    }
    const PINNED_SEED0_FIRST: &str = "99ec5f36cb75f2b4";

    #[test]
    fn below_and_ranges_stay_in_bounds() {
        let mut r = Rng::new(7);
        for _ in 0..10_000 {
            assert!(r.below(6) < 6);
            let x = r.range_i64(-3, 3);
            assert!((-3..=3).contains(&x));
            let f = r.range_f64(1.5, 2.5);
            assert!((1.5..2.5).contains(&f));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range_i64(5, 5), 5);
    }

    #[test]
    fn weighted_follows_weights() {
        let mut r = Rng::new(9);
        let mut hits = [0u32; 3];
        let n = 100_000;
        for _ in 0..n {
            hits[r.weighted(&[1.0, 0.0, 3.0]).unwrap()] += 1;
        }
        assert_eq!(hits[1], 0);
        let share = f64::from(hits[2]) / f64::from(n);
        assert!((share - 0.75).abs() < 0.01, "share {share}");
        assert_eq!(r.weighted(&[0.0, -1.0, f64::NAN]), None);
        assert_eq!(r.weighted(&[]), None);
    }

    #[test]
    fn ids_are_32_hex_and_distinct() {
        let mut r = Rng::new(1);
        let a = r.id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, r.id());
    }
}
