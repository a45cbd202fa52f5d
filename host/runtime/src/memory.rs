//! The one bounds-checked view of guest memory. Every pointer and length from a guest goes through
//! [`GuestSlice::read`]; nothing else indexes guest memory.

use crate::PluginError;

/// A `(ptr, len)` pair a guest handed back, not yet trusted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestSlice {
    pub(crate) ptr: u32,
    pub(crate) len: u32,
}

impl GuestSlice {
    /// Borrow the bytes from `memory`, refusing null, out-of-bounds or over-`max` ranges.
    pub(crate) fn read<'m>(&self, memory: &'m [u8], max: usize) -> Result<&'m [u8], PluginError> {
        let len = self.len as usize;
        if self.ptr == 0 {
            return Err(PluginError::BadOutput("null output pointer".into()));
        }
        if len > max {
            return Err(PluginError::BadOutput(format!(
                "output of {len} bytes exceeds the {max}-byte cap"
            )));
        }
        let start = self.ptr as usize;
        let end = start
            .checked_add(len)
            .ok_or_else(|| PluginError::BadOutput("output range overflows".into()))?;
        memory.get(start..end).ok_or_else(|| {
            PluginError::BadOutput(format!(
                "output {start}..{end} is outside guest memory of {} bytes",
                memory.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_in_bounds_and_under_cap() {
        let mem = vec![7u8; 100];
        assert_eq!(GuestSlice { ptr: 10, len: 5 }.read(&mem, 64).unwrap(), &[7; 5]);
        assert_eq!(GuestSlice { ptr: 95, len: 5 }.read(&mem, 64).unwrap().len(), 5);
        assert!(GuestSlice { ptr: 96, len: 5 }.read(&mem, 64).is_err());
        assert!(GuestSlice { ptr: 0, len: 5 }.read(&mem, 64).is_err());
        assert!(GuestSlice { ptr: 1, len: 65 }.read(&mem, 64).is_err());
        assert!(
            GuestSlice {
                ptr: u32::MAX,
                len: u32::MAX
            }
            .read(&mem, usize::MAX)
            .is_err()
        );
    }
}
