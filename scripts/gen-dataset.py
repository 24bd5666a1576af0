#!/usr/bin/env python3
"""Deterministic mixed dataset for snapshot benchmarks.

usage: gen-dataset.py DIR [SIZE_MIB]

About half of the bytes are random (incompressible), half text-like (compresses ~3-4x with
zstd:1); 8 MiB "SST-like" files, a few large files and ~2000 small files. Same seed, same bytes.
"""
import os
import random
import sys

def main():
    out = sys.argv[1]
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    rng = random.Random(20261125)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))) for _ in range(5000)]
    os.makedirs(out, exist_ok=True)

    def text(n):
        parts, size = [], 0
        while size < n:
            line = b" ".join(rng.choice(words) for _ in range(12)) + b" %d\n" % rng.randint(0, 1 << 40)
            parts.append(line)
            size += len(line)
        return b"".join(parts)[:n]

    budget = total << 20
    small_total = min(budget // 32, 32 << 20)
    os.makedirs(os.path.join(out, "small"), exist_ok=True)
    used, i = 0, 0
    while used < small_total:
        n = rng.randint(1024, 32 << 10)
        data = text(n) if i % 2 else rng.randbytes(n)
        with open(os.path.join(out, "small", "f%05d.dat" % i), "wb") as f:
            f.write(data)
        used += n
        i += 1
    big = [64 << 20, 32 << 20]
    os.makedirs(os.path.join(out, "sst"), exist_ok=True)
    j = 0
    for n in big:
        if used + n > budget:
            break
        with open(os.path.join(out, "big%d.bin" % j), "wb") as f:
            f.write(text(n) if j % 2 else rng.randbytes(n))
        used += n
        j += 1
    k = 0
    while used < budget:
        n = min(8 << 20, budget - used)
        with open(os.path.join(out, "sst", "%06d.sst" % k), "wb") as f:
            f.write(text(n) if k % 2 else rng.randbytes(n))
        used += n
        k += 1
    print("wrote %d MiB in %d small, %d big, %d sst files to %s" % (used >> 20, i, j, k, out))

if __name__ == "__main__":
    main()
