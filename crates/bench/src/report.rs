//! `report.md` for a tuning run: the recommendation and why, one table of every configuration,
//! the charts, the server's own stage timings, the load generator's health, and TorchServe's
//! ab_report columns; plus `results.json` and a combined `ab_report.csv` beside it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use crate::ab_report;
use crate::tune::{TuneRun, run_settings};

/// Writes `results.json`, `ab_report.csv`, the charts and `report.md` into `dir`.
///
/// # Errors
/// A file cannot be written.
pub fn write_all(dir: &Path, run: &TuneRun) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(run)?)
        .with_context(|| format!("writing {}", dir.join("results.json").display()))?;
    let rows: Vec<Vec<String>> =
        run.cases.iter().map(|c| ab_report::row(&c.result, &run_settings(&c.case))).collect();
    ab_report::write(&dir.join("ab_report.csv"), &rows)?;
    crate::chart::write_all(dir, run)?;
    std::fs::write(dir.join("report.md"), markdown(run))
        .with_context(|| format!("writing {}", dir.join("report.md").display()))?;
    Ok(())
}

fn f(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The report text.
pub fn markdown(run: &TuneRun) -> String {
    let mut md = String::new();
    let models: Vec<String> = {
        let mut m: Vec<String> = run.cases.iter().map(|c| c.case.model.clone()).collect();
        m.dedup();
        m
    };
    let _ = writeln!(md, "# Tuning report: {}\n", models.join(", "));
    let _ = writeln!(md, "- Date: {}", run.date);
    let _ = writeln!(md, "- Machine (load generator): {}", run.machine.summary());
    let _ = writeln!(
        md,
        "- SLA: P99 ≤ {} ms, no failed requests; throughputs within {:.0}% tie",
        run.sla_p99_ms,
        run.tie_tolerance * 100.0
    );
    for note in &run.notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(md, "\n## Recommendation\n");
    match &run.choice.best {
        Some(best) => {
            let c = &run.cases[best.index];
            let _ = writeln!(
                md,
                "**{}**: workers {}, batch size {}, batch delay {} ms{}{}. {}.\n",
                best.name,
                c.case.workers,
                c.case.batch_size,
                c.case.batch_delay,
                c.engine_name().map(|e| format!(", engine {e}")).unwrap_or_default(),
                load_shape(c),
                capitalise(&best.why)
            );
            match &run.choice.runner_up {
                Some(r) => {
                    let _ = writeln!(md, "Runner-up: **{}**, which {}.\n", r.name, r.why);
                }
                None => {
                    let _ = writeln!(md, "No other configuration meets the SLA.\n");
                }
            }
        }
        None => {
            let _ = writeln!(md, "**No configuration meets the SLA.**");
            if let Some(c) = &run.choice.closest {
                let _ = writeln!(md, " Closest: **{}**: {}.", c.name, c.why);
            }
            md.push('\n');
        }
    }
    let _ = writeln!(md, "## Configurations\n");
    let _ = writeln!(
        md,
        "| target | case | engine | workers | batch | delay ms | load | req/s | mean ms | p50 ms | p90 ms | p99 ms | p99.9 ms | failed | meets SLA |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, c) in run.cases.iter().enumerate() {
        let r = &c.result;
        let mark = if run.choice.best.as_ref().is_some_and(|b| b.index == i) { " ★" } else { "" };
        let meets = r.failed == 0 && r.latency_ms.p99 <= run.sla_p99_ms;
        let _ = writeln!(
            md,
            "| {} | {}{mark} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.target,
            c.case.name,
            c.engine_name().unwrap_or("default"),
            c.case.workers,
            c.case.batch_size,
            c.case.batch_delay,
            load_shape(c).trim_start_matches(", "),
            f(r.throughput_rps),
            f(r.latency_ms.mean),
            f(r.latency_ms.p50),
            f(r.latency_ms.p90),
            f(r.latency_ms.p99),
            f(r.latency_ms.p999),
            errors(r),
            if meets { "yes" } else { "no" }
        );
    }
    let _ = writeln!(md, "\n## Charts\n");
    let _ = writeln!(md, "![Throughput against P99](throughput_vs_p99.png)\n");
    let _ = writeln!(md, "![Latency distribution](latency.png)\n");
    let _ = writeln!(
        md,
        "SVG versions: [throughput_vs_p99.svg](throughput_vs_p99.svg), [latency.svg](latency.svg).\n"
    );
    stages(&mut md, run);
    generator(&mut md, run);
    ab_table(&mut md, run);
    md
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn load_shape(c: &crate::tune::CaseResult) -> String {
    match c.case.rate {
        Some(r) => format!(", open loop at {r} req/s (at most {} in flight)", c.case.concurrency),
        None => format!(", {} concurrent clients", c.case.concurrency),
    }
}

fn errors(r: &crate::result::BenchResult) -> String {
    if r.failed == 0 {
        return "0".into();
    }
    let by: Vec<String> = r.errors.iter().map(|(k, v)| format!("{v}×{k}")).collect();
    format!("{} ({})", r.failed, by.join(", "))
}

fn stages(md: &mut String, run: &TuneRun) {
    let names = ["queue", "preprocess", "inference", "postprocess", "total"];
    let any = run
        .cases
        .iter()
        .any(|c| !c.result.server_timing.is_empty() || c.result.server_counts.is_some());
    if !any {
        return;
    }
    let _ = writeln!(md, "## Server-side time\n");
    let _ = writeln!(
        md,
        "Mean / P99 in ms per stage from the `Server-Timing` header of each answer; servers without it \
         (TorchServe) show the means of their cumulative `ts_*` counters instead. `server count` is \
         `ts_inference_requests_total` during the measurement.\n"
    );
    let _ = writeln!(
        md,
        "| target | case | queue | preprocess | inference | postprocess | total | server count |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for c in &run.cases {
        let r = &c.result;
        let counts = r.server_counts.as_ref();
        let cells: Vec<String> = names
            .iter()
            .map(|n| match r.server_timing.get(*n) {
                Some(l) => format!("{} / {}", f(l.mean), f(l.p99)),
                None => match (*n, counts) {
                    ("queue", Some(c)) => c
                        .mean_queue_ms()
                        .map(|v| format!("{} / –", f(v)))
                        .unwrap_or_else(|| "–".into()),
                    ("total", Some(c)) => c
                        .mean_latency_ms()
                        .map(|v| format!("{} / –", f(v)))
                        .unwrap_or_else(|| "–".into()),
                    _ => "–".into(),
                },
            })
            .collect();
        let count = counts
            .and_then(|c| c.inference_requests())
            .map(|n| format!("{n:.0}"))
            .unwrap_or_else(|| "–".into());
        let _ =
            writeln!(md, "| {} | {} | {} | {count} |", c.target, c.case.name, cells.join(" | "));
    }
    md.push('\n');
}

fn generator(md: &mut String, run: &TuneRun) {
    let _ = writeln!(md, "## Load generator\n");
    let _ = writeln!(
        md,
        "Cores the generator kept busy, the machine's mean CPU use, and (open loop) the send rate it \
         achieved and the sends that left over 2 ms late. Warnings say where the client may have \
         limited the result.\n"
    );
    let _ = writeln!(
        md,
        "| target | case | generator cores | machine CPU % | sent req/s | late sends | warnings |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for c in &run.cases {
        let g = &c.result.generator;
        let opt = |v: Option<f64>| v.map(f).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.target,
            c.case.name,
            opt(g.cores_busy),
            opt(g.host_cpu_percent),
            opt(g.achieved_send_rate),
            if c.case.rate.is_some() { g.late_sends.to_string() } else { "–".into() },
            if g.warnings.is_empty() { "none".into() } else { g.warnings.join("; ") }
        );
    }
    md.push('\n');
}

fn ab_table(md: &mut String, run: &TuneRun) {
    let _ = writeln!(md, "## TorchServe ab_report columns\n");
    let _ = writeln!(
        md,
        "The same figures in the columns of TorchServe's `ab_report.csv` (also written beside this \
         report, and one per case folder).\n"
    );
    let _ = writeln!(md, "| target | {} |", ab_report::COLUMNS.join(" | "));
    let _ = writeln!(md, "|---|{}", "---|".repeat(ab_report::COLUMNS.len()));
    for c in &run.cases {
        let row = ab_report::row(&c.result, &run_settings(&c.case));
        let _ = writeln!(md, "| {} | {} |", c.target, row.join(" | "));
    }
}
