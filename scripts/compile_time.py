#!/usr/bin/env python3
"""Compile cost of the attribute: a crate with N annotated fns against the same crate with N
hand-written retry loops. Dependencies are built once (warm); what is timed is rebuilding the
generated crate alone, several times, alternating the crates. Prints a markdown table.

Usage: python3 scripts/compile_time.py [--fns 200] [--runs 7] [--release] [--instructions] [--codegen]

`--instructions` also counts the instructions rustc executes for each crate (one full build of
it under callgrind, a minute or two each): deterministic, unlike the seconds on a shared machine,
and split into the attribute's own run (the proc macro) and everything else.

Four crates: hand-written loops; the attribute with literals (`max_attempts = 3..5, initial_delay
= 0.5, max_delay = 10.0`, as a provider client sets them: three distinct sets); the same with an
initial delay of its own in every fn (no two fns share their policy constant, the worst case);
the bare attribute (every default).
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

# Every fn with literals of its own (an initial delay from 0.500 s up), so that no two share the
# evaluation of their policy constant: the worst case for the attribute.
ANNOTATED_DISTINCT = ANNOTATED.replace("initial_delay = 0.5", "initial_delay = {delay}")

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


# With `--codegen`: every fn's future boxed as a trait object, so that rustc generates its code in
# this crate (as a binary calling the fns would); without, a library's async fns are only
# type-checked here.
CODEGEN = """
pub fn futures<'a>(c: &'a Client) -> Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Result<usize, ProviderError>> + 'a>>> {{
    vec![{calls}]
}}
"""


def generate(name, template, fns, codegen=False):
    path = os.path.join(WORK, name)
    os.makedirs(os.path.join(path, "src"), exist_ok=True)
    with open(os.path.join(path, "Cargo.toml"), "w") as f:
        f.write(manifest(name))
    body = [HEADER]
    for i in range(fns):
        body.append(template.format(
            i=i, attempts=3 + i % 3, modulo=2 + i % 5, delay=f"{0.5 + i / 1000:.3f}"))
    if codegen:
        calls = ", ".join(f"Box::pin(c.call_{i}(\"x\"))" for i in range(fns))
        body.append(CODEGEN.format(calls=calls))
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
  {patterns})
    for a in "$@"; do [ -n "$next" ] && name="$a" && next=; [ "$a" = --crate-name ] && next=1; done
    exec valgrind --tool=callgrind --callgrind-out-file="{work}/callgrind.$name" "$rustc" "$@" 2>/dev/null ;;
  *) exec "$rustc" "$@" ;;
esac
"""


def instructions(path, name, release):
    """(total, in the proc macro) instructions of one full build of the crate."""
    wrapper = os.path.join(WORK, "callgrind-rustc.sh")
    with open(wrapper, "w") as f:
        patterns = "|".join(f'*" --crate-name {name} "*' for name, _, _ in CRATES)
        f.write(WRAPPER.format(work=WORK, patterns=patterns))
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


# (name, label, template) of each generated crate, in the order of the table.
CRATES = (
    ("hand", "hand-written loops", HAND),
    ("annotated", "#[retry_on_failure(..literals..)], 3 distinct sets", ANNOTATED),
    ("distinct", "#[retry_on_failure(..literals..)], every fn its own", ANNOTATED_DISTINCT),
    ("defaults", "#[retry_on_failure]", ANNOTATED_DEFAULTS),
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fns", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--release", action="store_true")
    ap.add_argument("--instructions", action="store_true")
    ap.add_argument("--codegen", action="store_true",
                    help="also generate every fn's code (box each future), as a binary would")
    args = ap.parse_args()

    for name, _, _ in CRATES:
        shutil.rmtree(os.path.join(WORK, name), ignore_errors=True)
    crates = {
        name: generate(name, template, args.fns, args.codegen) for name, _, template in CRATES
    }
    profile = "release" if args.release else "debug"
    seconds = {}
    for incremental in (False, True):
        for path in crates.values():  # warm: dependencies, proc-macro, incremental cache
            build(path, args.release, incremental)
        times = {name: [] for name in crates}
        for _ in range(args.runs):
            for name, path in crates.items():
                times[name].append(build(path, args.release, incremental))
        seconds[incremental] = {name: statistics.median(t) for name, t in times.items()}
    counts = None
    if args.instructions:
        counts = {name: instructions(path, name, args.release) for name, path in crates.items()}

    what = "with every fn's future boxed (code generated)" if args.codegen else "async fns unused"
    print(f"{args.fns} fns, {what}, {profile} build of the generated crate only "
          f"(dependencies built); "
          f"seconds: median of {args.runs} runs, the crates alternating"
          + ("; instructions: rustc under callgrind, one full build" if counts else ""))
    header = "| crate | full build (s) | ratio | incremental rebuild (s) | ratio |"
    rule = "|---|---:|---:|---:|---:|"
    if counts:
        header += " instructions (M) | ratio | of which in the proc macro (M) |"
        rule += "---:|---:|---:|"
    print(header)
    print(rule)
    for name, label, _ in CRATES:
        full, incr = seconds[False], seconds[True]
        row = (f"| {label} | {full[name]:.2f} | {full[name] / full['hand']:.2f}x "
               f"| {incr[name]:.2f} | {incr[name] / incr['hand']:.2f}x |")
        if counts:
            total, macro = counts[name]
            row += f" {total / 1e6:.0f} | {total / counts['hand'][0]:.3f}x | {macro / 1e6:.0f} |"
        print(row)


if __name__ == "__main__":
    sys.exit(main())
