#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""checksums.py - the sums the `tandem bench gva` guests must reach (the
*_CHECKSUM values of bench_guests.h), from a model of what each program
loads, with the constants read from bench_guests.h. Run it after changing a
program's loops or constants and copy its output into the header.

    python3 guests/bench/checksums.py
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
M64 = (1 << 64) - 1


def constants():
    """The plain numeric #defines of bench_guests.h."""
    text = open(os.path.join(HERE, "bench_guests.h")).read()
    c = {}
    for name, val in re.findall(r"#define\s+(BG_\w+)\s+\(?([0-9][0-9a-fA-Fx]*)(?:ULL)?\)?\s", text):
        c[name] = int(val, 0)
    for name, other in re.findall(r"#define\s+(BG_\w+)\s+(BG_\w+)\s", text):
        c[name] = c[other]  # one defined as another
    c["BG_GVA_PAGES"] = 1 << c["BG_GVA_PAGE_BITS"]
    return c


def lcg_loads(c, x, n, shift, add, value):
    """bg_random_loads: n loads; value(p) is what page p holds."""
    a, k, mask = c["BG_MEM_LCG_A"], c["BG_MEM_LCG_C"], c["BG_GVA_PAGES"] - 1
    s = 0
    for _ in range(n):
        x = (x * a + k) & M64
        s += value(((x >> shift) + add) & mask)
    return x, s


def refill(c):
    pages, loads, bits = c["BG_GVA_PAGES"], c["BG_REFILL_LOADS"], c["BG_GVA_PAGE_BITS"]
    alias = lambda p: p % c["BG_GVA_ALIAS_FRAMES"]  # frame p % 64 holds its number
    spread = lambda p: p
    x, s = c["BG_MEM_LCG_SEED"], sum(alias(p) for p in range(pages))
    x, t = lcg_loads(c, x, loads, 64 - c["BG_REFILL_HIT_BITS"], c["BG_REFILL_HIT_BASE"], alias)
    s += t
    x, t = lcg_loads(c, x, loads, 64 - bits, 0, alias)
    s += t
    s += sum(spread(p) for p in range(pages))
    x, t = lcg_loads(c, x, loads, 64 - bits, 0, spread)
    return (s + t) & M64


def flush(c):
    # two sections load page j's frame j, BG_FLUSH_ITERS times
    return 2 * c["BG_FLUSH_ITERS"] * sum(range(c["BG_FLUSH_PAGES"]))


def ctxsw(c):
    spaces, pages, n = c["BG_CTX_SPACES"], c["BG_CTX_PAGES"], c["BG_CTX_SWITCHES"]
    k, s = 0, 0
    for _ in range(n):                      # satp unchanged: space 0's pages
        k = (k + 1) % spaces
        s += sum(range(pages))
    for rounds in (spaces, n, n):           # untimed round, asid, noasid
        for _ in range(rounds):
            k = (k + 1) % spaces
            s += sum(k * pages + j for j in range(pages))
    return s


def inval(c):
    pages, bits = c["BG_GVA_PAGES"], c["BG_GVA_PAGE_BITS"]
    x, t = lcg_loads(c, c["BG_MEM_LCG_SEED"], c["BG_INVAL_LOADS"], 64 - bits, 0, lambda p: p)
    return (sum(range(pages)) + t) & M64


if __name__ == "__main__":
    c = constants()
    print("#define BG_REFILL_CHECKSUM      0x%xULL" % refill(c))
    print("#define BG_FLUSH_CHECKSUM       %d" % flush(c))
    print("#define BG_CTX_CHECKSUM         %d" % ctxsw(c))
    print("#define BG_INVAL_CHECKSUM       0x%xULL" % inval(c))
