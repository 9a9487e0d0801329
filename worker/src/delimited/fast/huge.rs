//! Zero-filled slices of plain data on 2 MiB pages, for the fast table.
//!
//! Why: a lookup in the fast table reads one random entry, so each needs
//! the address translation of a random page. In 4 KiB pages a table of
//! 10,000 groups (8 MiB, an eighth full) spans 2,048 pages, as many as a
//! Zen 3 core's second-level translation cache holds, and the file's pages
//! compete for it: lookups wait on page walks. The fast loop prefetches
//! each entry a window ahead ([`super::pairs`]); with small pages the
//! profile's samples then sat behind the prefetch instructions (a prefetch
//! waits for its translation), which hid little of the misses. On
//! 2 MiB pages the table spans four. Linux backs an anonymous mapping with
//! transparent huge pages where asked (`MADV_HUGEPAGE`, which most
//! distributions require) and only for whole, aligned 2 MiB blocks; a `Vec`
//! asks for neither. Q2's kernel alone on one core (AMD EPYC, Zen 3,
//! hyperfine means of 8 runs in one sitting): 1.84 s before, 1.57 s with
//! the prefetch, 1.25 s with the prefetch and these pages; the huge pages
//! alone made no difference that the machine's noise let through.
//!
//! No crate offers this: memmap2 gives the mapping and the advice, bytemuck
//! the typed view of its bytes; this file aligns the one to 2 MiB blocks
//! and falls back to the heap where mapping fails.

use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use bytemuck::Pod;
use memmap2::MmapMut;

/// The size of a transparent huge page on x86-64 and most arm64 kernels.
pub(super) const HUGE: usize = 2 << 20;

/// `len` values of `T`, zero-filled, on transparent huge pages where the
/// system gives them.
pub(crate) struct HugeSlice<T: Pod> {
    /// The first value: in `_memory`, which it outlives by never leaving
    /// this struct.
    first: NonNull<T>,
    len: usize,
    /// Owns the values; their address does not change when it moves (a
    /// mapping, or a `Vec`'s heap buffer).
    _memory: Memory<T>,
}

/// What holds a [`HugeSlice`]'s values.
enum Memory<T> {
    /// An anonymous mapping; the values start at its first 2 MiB boundary.
    Mapped { _map: MmapMut },
    /// Where the mapping could not be made.
    Heap { _values: Vec<T> },
}

// SAFETY: a `HugeSlice` owns its values as a `Vec<T>` would; the pointer
// is never shared outside it.
unsafe impl<T: Pod + Send> Send for HugeSlice<T> {}
// SAFETY: as above; `&HugeSlice` gives only `&[T]`.
unsafe impl<T: Pod + Sync> Sync for HugeSlice<T> {}

impl<T: Pod> HugeSlice<T> {
    /// `len` zero values.
    pub(crate) fn zeroed(len: usize) -> Self {
        match Self::map(len) {
            Ok(slice) => slice,
            Err(e) => {
                log::debug!("fast table of {len} entries on the heap: {e}");
                let mut values = vec![T::zeroed(); len];
                HugeSlice {
                    first: NonNull::new(values.as_mut_ptr()).unwrap_or(NonNull::dangling()),
                    len,
                    _memory: Memory::Heap { _values: values },
                }
            }
        }
    }

    /// `len` values in a mapping: whole 2 MiB blocks for them, plus one
    /// block of slack to align their start, of which only the touched
    /// pages cost memory.
    fn map(len: usize) -> std::io::Result<Self> {
        let too_big = || std::io::Error::other("size overflows");
        let bytes = len.checked_mul(size_of::<T>()).ok_or_else(too_big)?;
        let blocks = bytes.div_ceil(HUGE).max(1);
        let span = blocks.checked_mul(HUGE).ok_or_else(too_big)?;
        let mut map = MmapMut::map_anon(span.checked_add(HUGE).ok_or_else(too_big)?)?;
        let address = map.as_ptr() as usize;
        let start = address.next_multiple_of(HUGE) - address;
        #[cfg(target_os = "linux")]
        if let Err(e) = map.advise_range(memmap2::Advice::HugePage, start, span) {
            log::debug!("MADV_HUGEPAGE on a fast table: {e}");
        }
        // The bytes start on a 2 MiB boundary (aligned for any `T` of page
        // alignment or less) and hold exactly `len` values: the cast
        // fails only where that is not so.
        let values: &mut [T] = map
            .get_mut(start..start + bytes)
            .and_then(|b| bytemuck::try_cast_slice_mut(b).ok())
            .ok_or_else(|| std::io::Error::other("mapping misaligned"))?;
        let first = NonNull::new(values.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Ok(HugeSlice {
            first,
            len,
            _memory: Memory::Mapped { _map: map },
        })
    }
}

impl<T: Pod> Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `first` points at `len` initialised values that `_memory`
        // owns and keeps in place (see `HugeSlice`).
        unsafe { std::slice::from_raw_parts(self.first.as_ptr(), self.len) }
    }
}

impl<T: Pod> DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.first.as_ptr(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_filled_aligned_and_writable() {
        for len in [0, 1, 4096, 40_000] {
            let mut slice = HugeSlice::<[u64; 8]>::zeroed(len);
            assert_eq!(slice.len(), len);
            assert!(slice.iter().all(|v| *v == [0; 8]));
            if let Some(first) = slice.first() {
                assert_eq!(first as *const _ as usize % HUGE, 0);
            }
            for (i, v) in slice.iter_mut().enumerate() {
                v[i % 8] = i as u64;
            }
            assert!(slice.iter().enumerate().all(|(i, v)| v[i % 8] == i as u64));
        }
    }
}
