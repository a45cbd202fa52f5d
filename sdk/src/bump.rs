//! The guest's memory allocator: a bump allocator, because every instance serves one call.
//!
//! The host starts each call from a fresh instance of the plugin's snapshot (ABI.md §4), so nothing
//! allocated in a call has to be reusable by a later one. Handing out memory by moving a pointer,
//! and taking back only the most recent block (which covers a growing `Vec` or `String`), costs a
//! few instructions where a general-purpose allocator costs a hundred or more. A call that allocates
//! without bound hits the host's memory cap as before. Only built for wasm, and only when the
//! `bump-allocator` feature is on (the default); turn it off to use Rust's default allocator.

#![allow(
    unsafe_code,
    reason = "a global allocator hands out raw memory; this module is its only implementation"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

const PAGE: usize = 65_536;
/// Once the snapshot is taken, memory is requested from the host this many pages at a time: each
/// `memory.grow` is a call out of the guest. Before it (during `cauldron_init`), one page at a
/// time, so the snapshot holds no more memory than init used: the host's reset after each call
/// walks the page table of all of it (measured for cultivation: 4 pages instead of 10 made a call
/// 0.3-1 µs faster).
const GROW_PAGES_AFTER_INIT: usize = 4;
/// Free space left at the end of [`headroom`]: a call's allocations usually fit without growing.
const HEADROOM: usize = 64 << 10;

struct State {
    /// Next free byte; 0 until the first allocation.
    next: usize,
    /// End of the memory the allocator may use (the end of linear memory).
    end: usize,
    /// Start of the most recent block, which `dealloc` and `realloc` may take back or extend.
    last: usize,
    /// Fewest pages to grow memory by.
    grow_pages: usize,
}

/// The allocator. Wasm instances of these plugins are single-threaded, hence no locking.
pub(crate) struct Bump(UnsafeCell<State>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Bump {}

impl Bump {
    /// An allocator whose heap starts at `__heap_base`, right after the module's static data.
    pub(crate) const fn new() -> Self {
        Self(UnsafeCell::new(State {
            next: 0,
            end: 0,
            last: 0,
            grow_pages: 1,
        }))
    }

    /// Make sure `bytes` more can be handed out; false when the host refuses to grow memory.
    fn reserve(state: &mut State, bytes: usize) -> bool {
        if state.next == 0 {
            // First use: the heap starts at `__heap_base`, which the linker places right after the
            // stack and the statics. Rust's own allocator would start at the end of the initial
            // memory instead, leaving up to a page unused below it; starting here keeps the
            // snapshot's memory a page smaller, and the host's reset after every call scans it all.
            unsafe extern "C" {
                static __heap_base: u8;
            }
            let base = (&raw const __heap_base).addr();
            let size = core::arch::wasm32::memory_size(0) * PAGE;
            state.next = base;
            state.end = size;
            state.last = base;
        }
        let Some(want) = state.next.checked_add(bytes) else {
            return false;
        };
        if want <= state.end {
            return true;
        }
        let pages = (want - state.end).div_ceil(PAGE).max(state.grow_pages);
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        state.end += pages * PAGE;
        true
    }
}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks never overlap (the pointer only moves forward, except to take back the most recent
// block whole), are aligned as asked, and lie inside linear memory that was grown to hold them.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded (see `Sync` above) and no reentrancy: nothing here allocates.
        let state = unsafe { &mut *self.0.get() };
        let align = layout.align();
        if !Self::reserve(state, layout.size() + align) {
            return null_mut();
        }
        let start = (state.next + align - 1) & !(align - 1);
        state.last = start;
        state.next = start + layout.size();
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        let start = ptr as usize;
        if start == state.last && start + layout.size() == state.next {
            state.next = start;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        let start = ptr as usize;
        if start == state.last && start + layout.size() == state.next {
            // The most recent block grows or shrinks in place.
            if new_size <= layout.size() || Self::reserve(state, new_size - layout.size()) {
                state.next = start + new_size;
                return ptr;
            }
            return null_mut();
        }
        // SAFETY: the caller upholds `realloc`'s contract; a new block is never the old one.
        unsafe {
            let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                return null_mut();
            };
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            }
            new
        }
    }
}

/// Leave [`HEADROOM`] of free memory after init, so the snapshot carries it and calls rarely
/// need to grow memory (each growth is a call out to the host).
pub(crate) fn headroom(bump: &Bump) {
    // SAFETY: as in `alloc`; called between allocations.
    let state = unsafe { &mut *bump.0.get() };
    let _ = Bump::reserve(state, HEADROOM);
    state.grow_pages = GROW_PAGES_AFTER_INIT;
}
