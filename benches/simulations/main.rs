//! The simulations behind docs/simulation.md and docs/*.png:
//!
//! - (a) the retry storm: 2000 clients against a rate-limited provider, on tokio's paused clock,
//!   our attribute's engine (each jitter mode, the budget, the throttle) against backon and
//!   tokio-retry2;
//! - (b) the AWS "Exponential Backoff and Jitter" optimistic-concurrency simulation;
//! - (c) the retry budget in an open loop.
//!
//! Run: `cargo bench --bench simulations` (add `-- --quick` for fewer repetitions). Prints the
//! tables as markdown and writes them to docs/simulation.md with the plots beside it.

mod occ;
mod open_loop;
mod plot;
mod rng;
mod storm;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use plot::{Line, Panel};

const COMMAND: &str = "cargo bench --bench simulations";

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (storm_runs, occ_trials) = if quick { (2, 10) } else { (10, 100) };
    let started = Instant::now();
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    std::fs::create_dir_all(&docs).expect("create docs/");

    let mut md = String::new();
    let _ = writeln!(md, "# Simulations\n");
    let _ = writeln!(
        md,
        "Regenerate everything on this page (tables and plots) with `{COMMAND}`. Our side is the \
         runtime's real engine (`CallState::step`, the `Gate`/`Observer` implementations and \
         `__private::sleep`, as `#[retry_on_failure]` expands); jitter draws are random, so \
         figures move by a few percent between runs.\n"
    );

    // (a) the retry storm
    let summaries: Vec<storm::Summary> = storm::Variant::ALL
        .into_iter()
        .map(|v| storm::summarize(v, storm_runs))
        .collect();
    let _ = writeln!(md, "## The retry storm\n");
    let _ = writeln!(
        md,
        "{} clients call at t = 0 a provider limited by a token bucket of 100 requests/s with a \
         burst of 100, answering in 20 ms (HTTP 429 when over the limit). Each client retries \
         until it succeeds: initial delay 1 s, factor 2, cap 10 s, unlimited attempts. tokio's \
         paused clock; mean of {storm_runs} runs. Ideal: 1.00 calls per client, last success at \
         19 s (100 at once, then 100/s).\n",
        storm::CLIENTS
    );
    let _ = writeln!(
        md,
        "| configuration | calls per client | succeeded | makespan (s) | vs ideal | mean completion (s) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for s in &summaries {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.1}% | {:.1} | {:.2}x | {:.1} |",
            s.variant.name(),
            s.calls_per_client,
            s.success * 100.0,
            s.makespan,
            s.makespan / 19.0,
            s.mean_completion
        );
    }
    let _ = writeln!(
        md,
        "\nReading the table:\n\n\
         - In this storm the provider's capacity, not the schedule, sets the pace, so every \
         retry that arrives before capacity is free is a wasted call: the longer the mean \
         delay, the fewer the calls. backon's jitter adds up to 100% to each delay (mean 1.5x) \
         and tokio-retry2's multiplies it by 0.5-1.5 (mean 1x); full jitter draws from \
         [0, delay] (mean 0.5x), so it makes more calls than both while finishing before \
         backon. Decorrelated jitter makes the fewest calls of the unshared configurations.\n\
         - A throttle that starts open lets all {n} first attempts through before any answer \
         can arrive; {refused} are refused, so {floor:.2} calls per client is the floor for \
         any open start. From the first 429 on it paces every retry into a free slot: no \
         second wave, last success within a few percent of the ideal 19 s. Declaring the \
         provider's quota (`initial_rate`) paces the first attempts too and reaches the ideal on \
         both counts.\n\
         - The quota need not be known: `initial_rate` is a guess, corrected as the answers \
         come in. Until the first 429 the rate follows twice what the provider accepted in the \
         last second (TCP's slow start); a cut (after a 429) or a climb renews the schedule, and \
         callers already waiting are booked anew at the new rate when they wake (none sleeps \
         more than 1 s on a booking). An overestimate pays for the burst it lets through at the \
         start (a declared rate starts with a full bucket), then is cut within a few round \
         trips; an underestimate doubles its way up. A guess that is right probes a little above \
         it; `max_rate` makes a known quota a ceiling.\n\
         - The budget run ends early by design: a client whose retry finds the budget empty \
         returns its 429 instead of retrying, so most clients give up and the provider sees \
         almost no extra load. Makespan and mean completion are over the clients that \
         succeeded.\n",
        n = storm::CLIENTS,
        refused = storm::CLIENTS - 100,
        floor = (2 * storm::CLIENTS - 100) as f64 / storm::CLIENTS as f64,
    );
    let _ = writeln!(md, "![clients done over time](retry_storm.png)\n");

    // (b) the AWS jitter simulation
    let clients: Vec<usize> = (10..=190).step_by(10).collect();
    let mut occ_points = vec![Vec::new(); occ::MODES.len()];
    for &n in &clients {
        for (i, mode) in occ::MODES.into_iter().enumerate() {
            occ_points[i].push(occ::point(n, mode, occ_trials, 0x5EED + n as u64));
        }
    }
    let _ = writeln!(
        md,
        "## Exponential backoff and jitter (AWS Architecture Blog)\n"
    );
    let _ = writeln!(
        md,
        "N clients each update one row once with optimistic concurrency (read the version, write \
         it back if unchanged), over a network with delay |N(10 ms, 2 ms)|; after a conflict the \
         client backs off (base 5 ms, so a first delay of 10 ms, doubling, cap 2 s) and reads \
         again. Calls are write attempts; time is until the last client is done. Continuous-time \
         discrete-event simulation as in the blog, each conflict decided by `CallState::step`; \
         mean of {occ_trials} trials per point.\n"
    );
    let names: Vec<&str> = occ::MODES.iter().map(|m| m.name()).collect();
    let _ = writeln!(
        md,
        "| clients | {} | {} |",
        names
            .iter()
            .map(|n| format!("calls, {n}"))
            .collect::<Vec<_>>()
            .join(" | "),
        names
            .iter()
            .map(|n| format!("time (ms), {n}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---:|{}", "---:|".repeat(2 * names.len()));
    for (row, &n) in clients.iter().enumerate() {
        let calls: Vec<String> = occ_points
            .iter()
            .map(|p| format!("{:.0}", p[row].0))
            .collect();
        let times: Vec<String> = occ_points
            .iter()
            .map(|p| format!("{:.0}", p[row].1))
            .collect();
        let _ = writeln!(
            md,
            "| {n} | {} | {} |",
            calls.join(" | "),
            times.join(" | ")
        );
    }
    let at100 = clients.iter().position(|&n| n == 100).expect("100 clients");
    let _ = writeln!(
        md,
        "\nAt 100 clients, full jitter makes {:.0}% fewer calls than no jitter.\n",
        100.0 * (1.0 - occ_points[1][at100].0 / occ_points[0][at100].0)
    );
    let _ = writeln!(md, "![calls and time per jitter mode](jitter_occ.png)\n");

    // (c) the retry budget
    let ps = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0];
    let budget: Vec<(f64, open_loop::Outcome, open_loop::Outcome)> = ps
        .iter()
        .map(|&p| {
            let (a, b) = open_loop::compare(p, 0xB0D6E7 + (p * 100.0) as u64);
            (p, a, b)
        })
        .collect();
    let _ = writeln!(md, "## The retry budget\n");
    let _ = writeln!(
        md,
        "Open loop: {} calls arrive every 10 ms whatever happens to earlier ones; each attempt \
         takes 20 ms and fails independently with probability p; 3 attempts per call with the \
         default delays. Load is attempts per call (1.00 = the offered load). Budget: \
         `RetryBudget::new()` (100 tokens, 0.15 earned per successful call). Goals: success \
         >= 99% at p = 10%, load <= 1.11x at p >= 50%.\n",
        open_loop::CALLS
    );
    let _ = writeln!(
        md,
        "| attempts failing | load, no budget | success, no budget | load, budget | success, budget |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|");
    for (p, a, b) in &budget {
        let _ = writeln!(
            md,
            "| {:.0}% | {:.3}x | {:.2}% | {:.3}x | {:.2}% |",
            p * 100.0,
            a.load,
            a.success * 100.0,
            b.load,
            b.success * 100.0
        );
    }
    let _ = writeln!(
        md,
        "\n![load with and without the budget](retry_budget.png)\n"
    );
    print!("{md}");
    eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    let out = docs.join("simulation.md");
    std::fs::write(&out, &md).expect("write docs/simulation.md");
    eprintln!("wrote {}", out.display());

    if !plot::init_font() {
        eprintln!("no DejaVu Sans font found (apt-get install fonts-dejavu-core): plots skipped");
        return;
    }
    let storm_lines: Vec<Line> = summaries
        .iter()
        .filter(|s| {
            !matches!(
                s.variant,
                storm::Variant::Jitter(retry_runtime::Jitter::None)
            )
        })
        .filter(|s| !matches!(s.variant, storm::Variant::Backon { jitter: false }))
        .filter(|s| !matches!(s.variant, storm::Variant::TokioRetry2 { jitter: false }))
        .map(|s| {
            let mut points = vec![(0.0, 0.0)];
            points.extend(
                s.example
                    .completions
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| (t, (i + 1) as f64)),
            );
            Line {
                name: s.variant.name().replace('`', ""),
                points,
            }
        })
        .collect();
    let occ_panel = |title: &str, y: &str, pick: fn(&(f64, f64)) -> f64| {
        let lines: Vec<Line> = occ::MODES
            .iter()
            .zip(&occ_points)
            .map(|(m, pts)| Line {
                name: format!("jitter = {}", m.name()),
                points: clients
                    .iter()
                    .zip(pts)
                    .map(|(&n, p)| (n as f64, pick(p)))
                    .collect(),
            })
            .collect();
        let y_max = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        Panel {
            title: title.into(),
            x_desc: "clients".into(),
            y_desc: y.into(),
            x_max: 200.0,
            y_max: y_max * 1.05,
            lines,
            legend_upper: true,
        }
    };
    let budget_panel = Panel {
        title: "Retry budget, open loop, 3 attempts".into(),
        x_desc: "share of attempts failing".into(),
        y_desc: "attempts per call".into(),
        x_max: 1.0,
        y_max: 3.1,
        lines: vec![
            Line {
                name: "no budget".into(),
                points: budget.iter().map(|(p, a, _)| (*p, a.load)).collect(),
            },
            Line {
                name: "RetryBudget::new()".into(),
                points: budget.iter().map(|(p, _, b)| (*p, b.load)).collect(),
            },
        ],
        legend_upper: true,
    };
    let plots = [
        (
            "retry_storm.png",
            (1100, 650),
            vec![Panel {
                title: format!(
                    "Retry storm: {} clients, provider 100 req/s (one run each)",
                    storm::CLIENTS
                ),
                x_desc: "seconds".into(),
                y_desc: "clients done".into(),
                x_max: 40.0,
                y_max: storm::CLIENTS as f64 * 1.02,
                lines: storm_lines,
                legend_upper: false,
            }],
        ),
        (
            "jitter_occ.png",
            (1400, 600),
            vec![
                occ_panel("OCC: write calls", "calls", |p| p.0),
                occ_panel("OCC: completion time", "ms", |p| p.1),
            ],
        ),
        ("retry_budget.png", (800, 550), vec![budget_panel]),
    ];
    for (name, size, panels) in plots {
        let path = docs.join(name);
        match plot::draw(&path, size, &panels) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => eprintln!("plot {name} failed: {e}"),
        }
    }
}
