//! The exact call of a logged action: the MessagePack `Call` the plugin received, byte for byte,
//! stored compressed in `action_log.call` so that any logged action can be re-run on its own
//! (`crate::replay`).
//!
//! The stored form is raw DEFLATE (RFC 1951) of the call's bytes, nothing else: no header, no
//! checksum (a replay compares outcome digests, which catches any corruption). Reading it back is
//! bounded by the ABI's call cap, so a stored value can never expand into more than a plugin could
//! have been sent.
//!
//! Operators bound the log's growth with `ACTION_LOG_CALL_RETENTION_DAYS` ([`retention`]): older
//! rows lose their stored call (set to NULL) and keep everything else, since idempotency answers
//! and audits still need them.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use cauldron_sdk::abi::MAX_CALL_BYTES;
use flate2::write::DeflateEncoder;
use flate2::{Compression, Decompress, FlushDecompress, Status};

use crate::store::Store;

/// How often the retention task clears expired calls.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// Rows cleared per statement, so one run never holds a long transaction.
pub const RETENTION_BATCH: u32 = 5_000;

/// Compress an encoded call for the log.
pub fn pack(call: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(call.len() / 3 + 16), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(call);
    encoder.finish().unwrap_or_default()
}

/// The encoded call a logged value holds. Refuses data that does not inflate, or inflates past the
/// ABI's call cap. (One call: a loop over many keeps an [`Unpacker`].)
pub fn unpack(stored: &[u8]) -> Result<Vec<u8>, String> {
    Unpacker::default().unpack(stored)
}

/// Inflates stored calls one after another with one decompressor: its state (tens of kilobytes)
/// is allocated and cleared once, not per call, which a replay of thousands of calls notices.
pub struct Unpacker {
    inflate: Decompress,
}

impl Default for Unpacker {
    fn default() -> Self {
        Self {
            inflate: Decompress::new(false),
        }
    }
}

impl Unpacker {
    /// As [`unpack`].
    pub fn unpack(&mut self, stored: &[u8]) -> Result<Vec<u8>, String> {
        self.inflate.reset(false);
        // A call compresses about 2-3 times; the buffer grows (up to the cap) when that guess is short.
        let mut out = Vec::with_capacity((stored.len() * 4).clamp(64, MAX_CALL_BYTES + 1));
        loop {
            let read = usize::try_from(self.inflate.total_in()).unwrap_or(usize::MAX);
            let written = out.len();
            let rest = stored.get(read..).unwrap_or_default();
            let status = self
                .inflate
                .decompress_vec(rest, &mut out, FlushDecompress::Finish)
                .map_err(|e| format!("the stored call does not inflate: {e}"))?;
            if out.len() > MAX_CALL_BYTES {
                return Err(format!(
                    "the stored call inflates past the {MAX_CALL_BYTES}-byte call cap"
                ));
            }
            match status {
                Status::StreamEnd => return Ok(out),
                _ if out.len() == out.capacity() => {
                    // Full: room for more, never past one byte over the cap (which refuses it above).
                    let more = out.len().min(MAX_CALL_BYTES + 1 - out.len()).max(1);
                    out.reserve_exact(more);
                }
                _ if out.len() == written
                    && usize::try_from(self.inflate.total_in()).unwrap_or(usize::MAX) == read =>
                {
                    return Err("the stored call does not inflate: it is cut short".to_owned());
                }
                _ => {}
            }
        }
    }
}

/// Clear the stored calls of actions logged more than `keep` ago, now and then every
/// [`RETENTION_INTERVAL`], for as long as the task runs; `None` keeps them forever (the task
/// returns at once). Every host of a cluster may run it: clearing is idempotent.
pub async fn retention(store: Arc<dyn Store>, keep: Option<Duration>) {
    let Some(keep) = keep else {
        return;
    };
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let before = now.saturating_sub(keep_ms);
        let mut cleared = 0u64;
        loop {
            match store.clear_logged_calls(before, RETENTION_BATCH).await {
                Ok(n) => {
                    cleared += n;
                    if n < u64::from(RETENTION_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "clearing expired logged calls failed; trying again later");
                    break;
                }
            }
        }
        if cleared > 0 {
            tracing::info!(cleared, before_ms = before, "expired logged calls cleared");
        }
        tokio::time::sleep(RETENTION_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_and_bombs_are_refused() {
        let call: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let packed = pack(&call);
        assert!(packed.len() < call.len() / 4, "{} bytes", packed.len());
        assert_eq!(unpack(&packed).expect("inflates"), call);
        assert!(unpack(b"\xff\xff\xff not deflate").is_err());
        let bomb = pack(&vec![0u8; MAX_CALL_BYTES + 1]);
        let err = unpack(&bomb).expect_err("past the cap");
        assert!(err.contains("call cap"), "{err}");
        assert_eq!(unpack(&pack(&[])).expect("empty"), Vec::<u8>::new());
        // Cut short: refused, not read as a shorter call.
        assert!(unpack(&packed[..packed.len() / 2]).is_err());
    }

    #[test]
    fn one_unpacker_inflates_many_calls_and_recovers_from_a_bad_one() {
        let mut unpacker = Unpacker::default();
        let calls: Vec<Vec<u8>> = (0..50u32)
            .map(|n| (0..n * 97).map(|i| (i * n % 251) as u8).collect())
            .collect();
        for call in &calls {
            assert_eq!(&unpacker.unpack(&pack(call)).expect("inflates"), call);
        }
        assert!(unpacker.unpack(b"\xff\xff\xff not deflate").is_err());
        assert!(unpacker.unpack(&pack(&vec![0u8; MAX_CALL_BYTES + 1])).is_err());
        assert_eq!(&unpacker.unpack(&pack(&calls[7])).expect("inflates"), &calls[7]);
    }
}
