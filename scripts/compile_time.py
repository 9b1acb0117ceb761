#!/usr/bin/env python3
"""Compile cost of the attribute: a crate with N annotated fns against the same crate with N
hand-written retry loops. Dependencies are built once (warm); what is timed is rebuilding the
generated crate alone, several times, alternating the two crates. Prints a markdown table.

Usage: python3 scripts/compile_time.py [--fns 200] [--runs 7] [--release]
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

HEADER = """#![allow(dead_code)]
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


def build(path, release, incremental):
    cmd = ["cargo", "build", "--quiet", "--target-dir", os.path.join(WORK, "target")]
    if release:
        cmd.append("--release")
    env = dict(os.environ, CARGO_INCREMENTAL="1" if incremental else "0")
    os.utime(os.path.join(path, "src", "lib.rs"))
    start = time.perf_counter()
    subprocess.run(cmd, cwd=path, check=True, env=env)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fns", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--release", action="store_true")
    args = ap.parse_args()

    shutil.rmtree(os.path.join(WORK, "annotated"), ignore_errors=True)
    shutil.rmtree(os.path.join(WORK, "hand"), ignore_errors=True)
    crates = {
        "annotated": generate("annotated", ANNOTATED, args.fns),
        "hand": generate("hand", HAND, args.fns),
    }
    profile = "release" if args.release else "debug"
    print(f"{args.fns} fns, {profile} build of the generated crate only (dependencies built), "
          f"median of {args.runs} runs, the two crates alternating")
    print("| build | hand-written loops (s) | #[retry_on_failure] (s) | ratio |")
    print("|---|---:|---:|---:|")
    for incremental in (False, True):
        for path in crates.values():  # warm: dependencies, proc-macro, incremental cache
            build(path, args.release, incremental)
        times = {name: [] for name in crates}
        for _ in range(args.runs):
            for name, path in crates.items():
                times[name].append(build(path, args.release, incremental))
        hand = statistics.median(times["hand"])
        annotated = statistics.median(times["annotated"])
        kind = "incremental rebuild (touch)" if incremental else "full crate build"
        print(f"| {kind} | {hand:.2f} | {annotated:.2f} | {annotated / hand:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
