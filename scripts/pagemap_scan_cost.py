#!/usr/bin/env python3
"""Time the PAGEMAP_SCAN ioctl that wasmtime issues when it resets a pooled memory slot.

Usage: python3 scripts/pagemap_scan_cost.py

The first cases map a memfd (the memory image) privately, 64 pages long, touch some of its pages,
then time the scan wasmtime runs: pages that are present and written, and neither the zero page
nor a file page. The last ones copy a pooled slot of the cultivation snapshot as it is today: a
4 GiB reservation whose first 48 pages (192 KiB) are accessible, the 13-page image mapped at page
15 over anonymous memory, the call's 5 written image pages and 1 written page past the image.
Variants: only 1 image page present, a 1-page image, and one image mapping over the whole slot
instead of the image between two anonymous mappings, as wasmtime maps it. A loop over an empty range measures what Python,
ctypes and the bare system call cost on their own; subtract it. Linux 6.7 or newer
(PAGEMAP_SCAN); run as any user. See docs/benchmarks.md.
"""

import ctypes
import os
import time

PAGE = 4096
PAGES = 64
LOOPS = 20_000

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]

PROT_NONE, PROT_READ_WRITE = 0x0, 0x3
MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x02, 0x10, 0x20, 0x4000
# _IOWR('f', 16, struct pm_scan_arg), the struct being 96 bytes.
PAGEMAP_SCAN = (3 << 30) | (96 << 16) | (ord("f") << 8) | 16
PAGE_IS_WRITTEN, PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_PFNZERO = 1 << 1, 1 << 2, 1 << 3, 1 << 6


class ScanArg(ctypes.Structure):
    """struct pm_scan_arg from linux/fs.h."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
            "category_inverted", "category_mask", "category_anyof_mask", "return_mask",
        )
    ]


def scan_arg(start, end, regions, max_pages=PAGES):
    """The scan wasmtime's pooling allocator runs (see its `pagemap.rs`)."""
    return ScanArg(
        ctypes.sizeof(ScanArg), 0, start, end, 0, ctypes.addressof(regions), len(regions), max_pages,
        PAGE_IS_PFNZERO | PAGE_IS_FILE,
        PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_PFNZERO | PAGE_IS_FILE,
        0, 0,
    )


def time_scan(fd, arg):
    start = time.perf_counter()
    for _ in range(LOOPS):
        if libc.ioctl(fd, PAGEMAP_SCAN, ctypes.byref(arg)) < 0:
            raise OSError(ctypes.get_errno(), "PAGEMAP_SCAN")
    return (time.perf_counter() - start) / LOOPS * 1e6


def case(fd, read, written):
    size = PAGES * PAGE
    image = os.memfd_create("image")
    os.ftruncate(image, size)
    os.write(image, b"x" * size)
    base = libc.mmap(None, size, PROT_READ_WRITE, MAP_PRIVATE, image, 0)
    memory = (ctypes.c_char * size).from_address(base)
    for page in range(read):
        _ = memory[page * PAGE]
    for page in range(written):
        memory[page * PAGE] = b"y"
    regions = (ctypes.c_uint64 * 3 * 32)()
    scan = time_scan(fd, scan_arg(base, base + size, regions))
    empty = time_scan(fd, scan_arg(base, base, regions))
    print(f"{read:2} pages read, {written:2} written: scan {scan:5.2f} µs, empty range {empty:5.2f} µs,"
          f" difference {scan - empty:5.2f} µs")


def slot(fd, whole_slot_image, image_pages, present):
    """A pooled slot: `present` of the image's pages read, up to 5 of them written."""
    accessible, image_at = 48, 15
    base = libc.mmap(None, 4 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    libc.mprotect(base, accessible * PAGE, PROT_READ_WRITE)
    image = os.memfd_create("image")
    os.ftruncate(image, accessible * PAGE)
    os.write(image, b"x" * accessible * PAGE)
    if whole_slot_image:
        libc.mmap(base, accessible * PAGE, PROT_READ_WRITE, MAP_PRIVATE | MAP_FIXED, image, 0)
    else:
        libc.mmap(base + image_at * PAGE, image_pages * PAGE, PROT_READ_WRITE, MAP_PRIVATE | MAP_FIXED, image, 0)
    memory = (ctypes.c_char * (accessible * PAGE)).from_address(base)
    for page in range(image_at, image_at + present):
        _ = memory[page * PAGE]
    for page in list(range(image_at, image_at + min(present, 5))) + [image_at + image_pages]:
        memory[page * PAGE] = b"y"
    regions = (ctypes.c_uint64 * 3 * 32)()
    scan = time_scan(fd, scan_arg(base, base + accessible * PAGE, regions, 512))
    empty = time_scan(fd, scan_arg(base, base, regions, 512))
    shape = "one image mapping over the slot" if whole_slot_image else "image between anonymous mappings"
    print(f"slot, {shape:32}, {image_pages:2}-page image, {present:2} present: scan {scan:5.2f} µs,"
          f" empty range {empty:5.2f} µs, difference {scan - empty:5.2f} µs")


def main():
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    for read, written in [(0, 0), (8, 6), (24, 6), (64, 6), (64, 64)]:
        case(fd, read, written)
    for whole_slot_image, image_pages, present in [(False, 13, 13), (False, 13, 1), (False, 1, 1), (True, 13, 13)]:
        slot(fd, whole_slot_image, image_pages, present)


if __name__ == "__main__":
    main()
