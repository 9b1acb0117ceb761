#!/usr/bin/env python3
"""Instructions per call on the happy path, counted by callgrind: deterministic, unlike the ns of
`cargo bench --bench happy_path` on a shared, noisy machine.

Builds the happy-path bench, then runs each of its variants twice under callgrind (N1 and N2
calls, collecting only inside the bench's `instructions_loop`) and reports
(Ir(N2) - Ir(N1)) / (N2 - N1): the steady-state cost of one call, with one-time costs (a thread's
first call claiming its statistics slot, seeding a random generator) cancelled out. The ratio is
against the hand-written retry loop, as in the timed bench.

Instructions are not time: a locked read-modify-write is one instruction but tens of cycles, and
callgrind sees neither cache misses nor contention. Use the count to compare code paths, the
timed bench for what a call costs.

Usage: python3 scripts/callgrind_happy_path.py [--bench happy_path] [--calls 2000] [--only SUBSTRING]
(`--bench one_retry` counts the one-retry bench's variants the same way.)
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The ratio's denominator: the first variant whose name starts with this.
BASELINE = "hand-written retry loop"


def bench_binary(bench):
    out = subprocess.run(
        ["cargo", "bench", "--bench", bench, "--no-run", "--message-format=json"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == bench:
            if msg.get("executable"):
                return msg["executable"]
    sys.exit(f"could not find the {bench} bench executable")


def instructions(binary, variant, calls):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--collect-atstart=no",
                "--toggle-collect=*instructions_loop*",
                binary,
                "--instructions",
                str(variant),
                str(calls),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals): (\d+)", line)
                if m:
                    return int(m.group(1))
    sys.exit(f"no totals in callgrind's output for variant {variant}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default="happy_path")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--only", help="variants whose name contains this")
    args = ap.parse_args()
    binary = bench_binary(args.bench)
    listing = subprocess.run(
        [binary, "--list"], check=True, stdout=subprocess.PIPE, text=True
    ).stdout
    variants = [line.split("\t") for line in listing.splitlines()]
    n1, n2 = args.calls, 2 * args.calls
    per_call = {}
    for index, name, _size in variants:
        if args.only and args.only not in name and not name.startswith(BASELINE):
            continue
        a = instructions(binary, index, n1)
        b = instructions(binary, index, n2)
        per_call[name] = (b - a) / (n2 - n1)
    base = next(v for k, v in per_call.items() if k.startswith(BASELINE))
    print(f"{args.bench}, instructions per call (callgrind, ({n2} - {n1} calls) difference)")
    print("| variant | instructions/call | vs hand loop |")
    print("|---|---:|---:|")
    for _index, name, _size in variants:
        if name in per_call:
            print(f"| {name} | {per_call[name]:.1f} | {per_call[name] / base:.3f}x |")


if __name__ == "__main__":
    main()
