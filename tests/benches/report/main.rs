//! The benchmark report: runs every measurement of `calseg_tests::bench` in one run, prints
//! every figure, and writes `docs/benchmarks.md` with SVG plots under `docs/benchmarks/`.
//! `scripts/bench.sh` builds the release binaries and runs this; `--quick` (small sizes, about
//! two minutes) writes to `target/bench-quick/` instead, so a smoke run never replaces the
//! committed report. BENCH_OUT overrides the output directory.
//!
//! # Layout
//! - `plan`: the sizes of a full and a quick run.
//! - `large`: the large run (`--large`): Calico's traffic per `auth_change_duty`, and up to
//!   10,000 nodes beside etcd's floor, written to `benchmarks-large.md`.
//! - `markdown`: the report text, generated from the measured numbers.
//! - `plot`: the SVG plots (plotters, SVG backend only).

mod large;
mod markdown;
mod plan;
mod plot;

use calseg_tests::bench::{Machine, agent, fleet, identity, procstat, rbac};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Every section's result, or why it has none.
pub struct Results {
    pub machine: Machine,
    pub plan: plan::Plan,
    pub rbac: Result<rbac::RbacResult, String>,
    pub identity: Result<identity::IdentityResult, String>,
    pub agent: Result<agent::AgentResult, String>,
    pub fleet: Vec<Result<fleet::FleetResult, String>>,
    /// Each section's wall time, in order.
    pub sections: Vec<(&'static str, Duration)>,
    pub total: Duration,
}

/// Runs one section, timing it and keeping its error as text (the report says it failed).
async fn section<T>(
    name: &'static str,
    times: &mut Vec<(&'static str, Duration)>,
    run: impl std::future::Future<Output = anyhow::Result<T>>,
) -> Result<T, String> {
    println!("\n== {name}");
    let started = Instant::now();
    let result = run.await.map_err(|e| format!("{e:#}"));
    times.push((name, started.elapsed()));
    if let Err(e) = &result {
        println!("{name} FAILED: {e}");
    }
    result
}

async fn run_all(plan: plan::Plan) -> Results {
    let started = Instant::now();
    let machine = Machine::detect();
    println!(
        "calseg benchmark report ({}): {} cores, {}, etcd {}, kernel {}, {}",
        plan.mode,
        machine.cores,
        machine.cpu_model,
        machine.etcd_version,
        machine.kernel,
        machine.date
    );
    let most = plan.fleet.iter().copied().max().unwrap_or(0);
    let fits = procstat::raise_nofile(most);
    let mut times = Vec::new();
    let rbac = section(
        "provisioning and no-change reconcile",
        &mut times,
        rbac::run(&plan.rbac),
    )
    .await;
    let identity = section(
        "signing and manifest throughput",
        &mut times,
        identity::run(plan.requests, plan.concurrency),
    )
    .await;
    let agent = section("agent cycle", &mut times, agent::run(plan.agent_repeats)).await;
    let mut fleets = Vec::new();
    for &n in &plan.fleet {
        let name = if n == plan.fleet[0] {
            "fleet rollout (smaller)"
        } else {
            "fleet rollout (larger)"
        };
        fleets.push(section(name, &mut times, fleet::run(n.min(fits))).await);
    }
    Results {
        machine,
        plan,
        rbac,
        identity,
        agent,
        fleet: fleets,
        sections: times,
        total: started.elapsed(),
    }
}

/// Where a run writes its report: `docs/`, or `target/bench-quick/` for a quick run, unless
/// BENCH_OUT says otherwise.
fn output_dir(quick: bool) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("BENCH_OUT").map_or_else(
        || {
            if quick {
                root.join("target/bench-quick")
            } else {
                root.join("docs")
            }
        },
        PathBuf::from,
    )
}

/// The large run: its own report file, beside the 15-minute one.
fn run_large(quick: bool) -> anyhow::Result<()> {
    let plan = if quick {
        large::LargePlan::quick()
    } else {
        large::LargePlan::full()
    };
    let out = output_dir(quick);
    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(large::run(plan));
    runtime.shutdown_timeout(Duration::from_secs(5));
    std::fs::create_dir_all(out.join("benchmarks"))?;
    let plots = large::draw(&results, &out.join("benchmarks"));
    let report = out.join("benchmarks-large.md");
    std::fs::write(&report, large::render(&results, &plots))?;
    println!("\n== summary");
    for (name, took) in &results.sections {
        println!("{name}: {:.0} s", took.as_secs_f64());
    }
    println!(
        "total {:.0} s; wrote {}",
        results.total.as_secs_f64(),
        report.display()
    );
    let failures = results
        .floor
        .iter()
        .filter(|f| f.as_ref().is_err_and(|e| !large::skipped(e)))
        .count()
        + usize::from(results.traffic.is_err());
    anyhow::ensure!(
        failures == 0,
        "{failures} section(s) failed: see the report"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // This executable is also the rusage wrapper and the agent floor process in the sandbox.
    if let Some(code) = agent::child_main() {
        std::process::exit(code);
    }
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    if std::env::args().any(|a| a == "--large") {
        return run_large(quick);
    }
    let plan = if quick {
        plan::Plan::quick()
    } else {
        plan::Plan::full()
    };
    let out = output_dir(quick);
    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(run_all(plan));
    // The simulated fleet's tasks and connections go with the runtime, before writing.
    runtime.shutdown_timeout(Duration::from_secs(5));

    std::fs::create_dir_all(out.join("benchmarks"))?;
    let plots = plot::draw_all(&results, &out.join("benchmarks"));
    let text = markdown::render(&results, &plots);
    let report = out.join("benchmarks.md");
    std::fs::write(&report, text)?;
    println!("\n== summary");
    for (name, took) in &results.sections {
        println!("{name}: {:.0} s", took.as_secs_f64());
    }
    println!(
        "total {:.0} s; wrote {} and {} plots under {}",
        results.total.as_secs_f64(),
        report.display(),
        plots.iter().filter(|p| p.is_ok()).count(),
        out.join("benchmarks").display()
    );
    for failed in plots.iter().filter_map(|p| p.as_ref().err()) {
        println!("plot failed: {failed}");
    }
    let failures = [
        results.rbac.is_err(),
        results.identity.is_err(),
        results.agent.is_err(),
    ]
    .into_iter()
    .chain(results.fleet.iter().map(Result::is_err))
    .filter(|failed| *failed)
    .count();
    anyhow::ensure!(
        failures == 0,
        "{failures} section(s) failed: see the report"
    );
    Ok(())
}
