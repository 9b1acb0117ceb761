#!/usr/bin/env python3
"""Compile cost of the attribute: a crate with N annotated fns against the same crate with N
hand-written retry loops. Dependencies are built once (warm); what is timed is rebuilding the
generated crate alone, several times, alternating the two crates. Prints a markdown table.

Usage: python3 scripts/compile_time.py [--fns 200] [--runs 7] [--release] [--instructions]

`--instructions` also counts the instructions rustc executes for each crate (one full build of
it under callgrind, a minute or two each): deterministic, unlike the seconds on a shared machine,
and split into the attribute's own run (the proc macro) and everything else.

Three crates: hand-written loops; the attribute with literals (`max_attempts = .., initial_delay =
0.5, max_delay = 10.0`, as a provider client sets them); the bare attribute (every default).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "compile-time")

HEADER = """#![allow(dead_code, unused_imports)]
use std::time::Duration;

#[derive(Debug)]
pub struct ProviderError(pub u32);

pub struct Client {
    pub calls: std::sync::atomic::AtomicU32,
}
"""

ANNOTATED = """
impl Client {{
    #[retry_runtime::retry_on_failure(max_attempts = {attempts}, initial_delay = 0.5, max_delay = 10.0)]
    pub async fn call_{i}(&self, prompt: &str) -> Result<usize, ProviderError> {{
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % {modulo} == 0 {{
            return Err(ProviderError(n));
        }}
        Ok(prompt.len() + {i})
    }}
}}
"""

ANNOTATED_DEFAULTS = """
impl Client {{
    #[retry_runtime::retry_on_failure]
    pub async fn call_{i}(&self, prompt: &str) -> Result<usize, ProviderError> {{
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % {modulo} == 0 {{
            return Err(ProviderError(n));
        }}
        Ok(prompt.len() + {i})
    }}
}}
"""

HAND = """
impl Client {{
    pub async fn call_{i}(&self, prompt: &str) -> Result<usize, ProviderError> {{
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {{
            let result: Result<usize, ProviderError> = async {{
                let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n % {modulo} == 0 {{
                    return Err(ProviderError(n));
                }}
                Ok(prompt.len() + {i})
            }}
            .await;
            match result {{
                Ok(v) => return Ok(v),
                Err(e) if attempt >= {attempts} => return Err(e),
                Err(_) => {{
                    tokio::time::sleep(delay.mul_f64(rand::random::<f64>())).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }}
            }}
        }}
    }}
}}
"""


def manifest(name):
    return f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2021"
publish = false

[workspace]

[dependencies]
retry-runtime = {{ path = "{ROOT}/retry-runtime" }}
tokio = {{ version = "1", features = ["time"] }}
rand = "0.10"
"""


def generate(name, template, fns):
    path = os.path.join(WORK, name)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Cargo.toml"), "w") as f:
        f.write(manifest(name))
    body = [HEADER]
    for i in range(fns):
        body.append(template.format(i=i, attempts=3 + i % 3, modulo=2 + i % 5))
    with open(os.path.join(path, "src", "lib.rs"), "w") as f:
        f.write("".join(body))
    return path


def build(path, release, incremental, wrapper=None):
    cmd = ["cargo", "build", "--quiet", "--target-dir", os.path.join(WORK, "target")]
    if release:
        cmd.append("--release")
    env = dict(os.environ, CARGO_INCREMENTAL="1" if incremental else "0")
    if wrapper:
        env["RUSTC_WRAPPER"] = wrapper
    os.utime(os.path.join(path, "src", "lib.rs"))
    start = time.perf_counter()
    subprocess.run(cmd, cwd=path, check=True, env=env)
    return time.perf_counter() - start


# A RUSTC_WRAPPER running rustc under callgrind for the generated crates only.
WRAPPER = """#!/bin/sh
rustc="$1"; shift
case " $* " in
  *" --crate-name hand "*|*" --crate-name annotated "*|*" --crate-name defaults "*)
    for a in "$@"; do [ -n "$next" ] && name="$a" && next=; [ "$a" = --crate-name ] && next=1; done
    exec valgrind --tool=callgrind --callgrind-out-file="{work}/callgrind.$name" "$rustc" "$@" 2>/dev/null ;;
  *) exec "$rustc" "$@" ;;
esac
"""


def instructions(path, name, release):
    """(total, in the proc macro) instructions of one full build of the crate."""
    wrapper = os.path.join(WORK, "callgrind-rustc.sh")
    with open(wrapper, "w") as f:
        f.write(WRAPPER.format(work=WORK))
    os.chmod(wrapper, 0o755)
    build(path, release, False, wrapper)
    out = os.path.join(WORK, f"callgrind.{name}")
    annotated = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", out],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    total = macro = 0
    for line in annotated.splitlines():
        fields = line.split()
        if not fields or not fields[0][0].isdigit():
            continue
        count = int(fields[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        elif "retry_macro::retry_on_failure " in line and macro == 0:
            macro = count
    return total, macro


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fns", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--instructions", action="store_true")
    args = ap.parse_args()

    for name in ("annotated", "defaults", "hand"):
        shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
    crates = {
        "hand": generate("hand", HAND, args.fns),
        "annotated": generate("annotated", ANNOTATED, args.fns),
        "defaults": generate("defaults", ANNOTATED_DEFAULTS, args.fns),
    }
    profile = "release" if args.release else "debug"
    print(f"{args.fns} fns, {profile} build of the generated crate only (dependencies built), "
          f"median of {args.runs} runs, the crates alternating")
    print("| build | hand-written loops (s) | #[retry_on_failure(..literals..)] (s) | ratio "
          "| #[retry_on_failure] (s) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for incremental in (False, True):
        for path in crates.values():  # warm: dependencies, proc-macro, incremental cache
            build(path, args.release, incremental)
        times = {name: [] for name in crates}
        for _ in range(args.runs):
            for name, path in crates.items():
                times[name].append(build(path, args.release, incremental))
        hand = statistics.median(times["hand"])
        annotated = statistics.median(times["annotated"])
        defaults = statistics.median(times["defaults"])
        kind = "incremental rebuild (touch)" if incremental else "full crate build"
        print(f"| {kind} | {hand:.2f} | {annotated:.2f} | {annotated / hand:.2f}x "
              f"| {defaults:.2f} | {defaults / hand:.2f}x |")
    if args.instructions:
        print()
        print("instructions rustc executes for a full build of the crate (callgrind)")
        print("| crate | instructions (M) | vs hand-written | of which in the proc macro (M) |")
        print("|---|---:|---:|---:|")
        counts = {name: instructions(path, name, args.release) for name, path in crates.items()}
        hand = counts["hand"][0]
        for name, label in (("hand", "hand-written loops"),
                            ("annotated", "#[retry_on_failure(..literals..)]"),
                            ("defaults", "#[retry_on_failure]")):
            total, macro = counts[name]
            print(f"| {label} | {total / 1e6:.0f} | {total / hand:.3f}x | {macro / 1e6:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
