//! `vigil-bench-detect`: the anomaly detector's quality and cost, with default settings.
//!
//! Quality: labelled series, either from `vigil-sim --to-csv DIR` (`--dir DIR`, repeat it
//! for several seeds) or from the built-in generator (`--seeds N`); precision, recall, F1
//! and median detection delay per anomaly kind, false alarms per series-day on clean
//! series. Cost: points scored per second on one thread at `--series` series, bytes of
//! state per series, and scoring with model fits running on another thread against
//! scoring with none. Prints markdown for BENCHMARKS.md.

mod cost;
mod nab;
mod quality;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "vigil-bench-detect",
    about = "anomaly detector quality and cost"
)]
struct Args {
    /// vigil-sim offline output directories (`--to-csv DIR`), one per seed.
    #[arg(long)]
    dir: Vec<PathBuf>,
    /// Seeds of the built-in generator (used when no --dir is given).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Built-in generator: series per anomaly kind (and clean series) per seed.
    #[arg(long, default_value_t = 8)]
    per_kind: usize,
    /// Built-in generator: days per series, about one reading a minute.
    #[arg(long, default_value_t = 7.0)]
    days: f64,
    /// Series for the cost measurement.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Readings per series before timing (fits inline, so every series has a model).
    #[arg(long, default_value_t = 700)]
    warm: usize,
    /// Timed readings per series, in each of the two cost phases.
    #[arg(long, default_value_t = 1_200)]
    rounds: usize,
    /// A checkout of the Numenta Anomaly Benchmark: also score its real-world series.
    #[arg(long)]
    nab: Option<PathBuf>,
    #[arg(long)]
    skip_cost: bool,
    #[arg(long)]
    skip_quality: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.skip_quality {
        let mut report = quality::Report::default();
        let source = if args.dir.is_empty() {
            for seed in 1..=args.seeds {
                let set = quality::generate(seed, args.per_kind, args.days);
                quality::evaluate(&set, &mut report);
            }
            format!(
                "built-in generator, seeds 1..={}, {} series per kind + {} clean per seed, {} days at ~1/min",
                args.seeds, args.per_kind, args.per_kind, args.days
            )
        } else {
            for dir in &args.dir {
                let set = quality::read_dir(dir)?;
                quality::evaluate(&set, &mut report);
            }
            format!("vigil-sim offline output, {} directories", args.dir.len())
        };
        print_quality(&source, &report);
    }
    if let Some(root) = &args.nab {
        print_nab(&nab::run(root)?);
    }
    if !args.skip_cost {
        let r = cost::run(args.series, args.warm, args.rounds);
        print_cost(&r);
    }
    Ok(())
}

fn print_quality(source: &str, r: &quality::Report) {
    println!(
        "Quality ({source}; {} series, {} readings; detected = an event within [start, end + {} readings]):\n",
        r.series,
        r.readings,
        quality::GRACE
    );
    println!("| kind | anomalies | detected | false alarms | precision | recall | F1 | median delay (readings) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (kind, k) in &r.kinds {
        println!(
            "| {kind} | {} | {} | {} | {:.3} | {:.3} | **{:.3}** | {} |",
            k.labels,
            k.detected,
            k.false_alarms,
            k.precision(),
            k.recall(),
            k.f1(),
            k.median_delay()
                .map_or_else(|| "–".to_owned(), |d| d.to_string())
        );
    }
    if r.clean_days > 0.0 {
        println!(
            "\nClean series: {} false alarms in {:.1} series-days = **{:.3} per series-day** ({:.2} per series-week).\n",
            r.clean_false_alarms,
            r.clean_days,
            r.clean_false_alarms as f64 / r.clean_days,
            7.0 * r.clean_false_alarms as f64 / r.clean_days
        );
    } else {
        println!("\nNo clean series in the input: false alarms per series-day not measured.\n");
    }
}

fn print_nab(r: &nab::NabReport) {
    println!(
        "Real-world series (NAB: {} files, {} readings; default settings and threshold; a window is detected when an event falls in it):\n",
        r.total.files, r.total.readings
    );
    println!("| category | files | windows | detected | false alarms | precision | recall | F1 | median delay (readings) | NAB score (standard) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, g) in r.categories.iter().chain([(&"all".to_owned(), &r.total)]) {
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} | {:.3} | **{:.3}** | {} | {:.1} |",
            g.files,
            g.hits.labels,
            g.hits.detected,
            g.hits.false_alarms,
            g.hits.precision(),
            g.hits.recall(),
            g.hits.f1(),
            g.hits
                .median_delay()
                .map_or_else(|| "–".to_owned(), |d| d.to_string()),
            g.normalised()
        );
    }
    let by: Vec<String> = r
        .total
        .by_detector
        .iter()
        .map(|(k, (inside, outside))| format!("{k} {inside} in windows / {outside} outside"))
        .collect();
    println!("\nEvents by detector: {}.\n", by.join(", "));
}

fn print_cost(r: &cost::CostReport) {
    println!(
        "Cost ({} series, {} warm-up readings each with inline fits, then two timed phases, one thread scoring):\n",
        r.series,
        r.warm_points / r.series as u64
    );
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| state per series (own accounting: struct + heap) | **{:.0} bytes** |",
        r.state_bytes
    );
    if let Some(rss) = r.rss_bytes {
        println!("| resident memory growth per series (allocator included) | {rss:.0} bytes |");
    }
    for (name, p) in [
        ("scoring, model fits on a worker thread", &r.with_fits),
        ("scoring, no fits at all", &r.without_fits),
    ] {
        println!(
            "| {name} | **{} points/s per core** (CPU time of the scoring thread); {:.0} points/s wall clock ({} points, {} fits installed; batch of 1000 wall clock: p99 {:?}, max {:?}) |",
            p.rate_per_core().map_or_else(|| "?".to_owned(), |r| format!("{r:.0}")),
            p.rate(),
            p.points,
            p.fits,
            p.batch_p99,
            p.batch_max
        );
    }
    println!(
        "| one model fit (k-means, k=4, 1 run, ≤ 30 iterations, ~500 × 6) | {:?} mean |",
        r.fit_mean
    );
    println!();
}
