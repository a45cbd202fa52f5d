#!/usr/bin/env python3
"""Time the PAGEMAP_SCAN ioctl that wasmtime issues when it resets a pooled memory slot.

Usage: python3 scripts/pagemap_scan_cost.py

The mapping has the shape of a plugin's slot: a private mapping of a memfd (the memory image),
64 pages long (256 KiB, the cultivation snapshot's memory). Each case touches some of its pages,
then times the scan wasmtime runs: pages that are present and written, and neither the zero page
nor a file page. A loop over an empty range measures what Python and ctypes add on their own;
subtract it. Linux 6.7 or newer (PAGEMAP_SCAN); run as any user. See docs/benchmarks.md.
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
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]

PROT_READ_WRITE = 0x3
MAP_PRIVATE = 0x02
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


def scan_arg(start, end, regions):
    """The scan wasmtime's pooling allocator runs (see its `pagemap.rs`)."""
    return ScanArg(
        ctypes.sizeof(ScanArg), 0, start, end, 0, ctypes.addressof(regions), len(regions), PAGES,
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


def main():
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    for read, written in [(0, 0), (8, 6), (24, 6), (64, 6), (64, 64)]:
        case(fd, read, written)


if __name__ == "__main__":
    main()
