//! The `kv-bench` binary: parse flags, run, print a table or a JSON line.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use kv_bench::cli::{Cli, Command, Plan};
use kv_bench::report::{class_table, markdown_class, markdown_idle, parse_records, Class};
use kv_bench::stats::Record;
use kv_bench::{chart, fanout, idle, limits, load, scaling};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.run.json;
    let outcome = match cli.command {
        Some(Command::Report {
            results,
            svg,
            ours,
            scaling: false,
        }) => report(&results, svg.as_deref(), &ours),
        Some(Command::Report {
            results,
            svg,
            ours,
            scaling: true,
        }) => report_scaling(&results, svg.as_deref(), &ours),
        Some(Command::Chart {
            results,
            out,
            ours,
            scaling,
        }) => draw(&results, &out, &ours, scaling),
        None => cli.run.into_plan().and_then(|plan| run(plan, json)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kv-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a load or idle plan and prints its result. A run in which nothing succeeded is a
/// failure (exit status 1); errors among successes are data, reported in the output.
fn run(plan: Plan, json: bool) -> Result<(), String> {
    let (record, succeeded) = match plan {
        Plan::Load(config) => {
            // 1,000 connections need more descriptors than the usual soft limit of 1,024.
            limits::raise_open_files(config.conns as u64 + 256)?;
            let report = load::run(config)?;
            let ok = report.ops > 0;
            (Record::Load(report), ok)
        }
        Plan::Idle(config) => {
            let report = idle::run(config)?;
            let ok = report.open > 0;
            (Record::Idle(report), ok)
        }
        Plan::Fanout(config) => {
            let connections = config.writers + config.subscribers + config.slow_subscribers;
            limits::raise_open_files(connections as u64 + 256)?;
            let report = fanout::run(config)?;
            let ok = report.writes_acked > 0;
            (Record::Fanout(report), ok)
        }
    };
    if json {
        let line =
            serde_json::to_string(&record).map_err(|e| format!("cannot encode JSON: {e}"))?;
        println!("{line}");
    } else {
        match &record {
            Record::Load(r) => print!("{}", r.table()),
            Record::Idle(r) => print!("{}", r.table()),
            Record::Fanout(r) => print!("{}", r.table()),
        }
    }
    if succeeded {
        Ok(())
    } else {
        Err("no request succeeded".into())
    }
}

fn read_records(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_records(&text)
}

/// Prints the Markdown tables; writes the chart if asked.
fn report(results: &Path, svg: Option<&Path>, ours: &[String]) -> Result<(), String> {
    let records = read_records(results)?;
    for class in [Class::Kv, Class::Echo] {
        let table = class_table(&records, class, ours);
        if !table.series.is_empty() {
            println!("#### {}\n\n{}", class.title(), markdown_class(&table));
        }
    }
    let idle = markdown_idle(&records, ours);
    if !idle.is_empty() {
        println!("#### Idle connections\n\n{idle}");
    }
    match svg {
        Some(out) => write_chart(&records, out, ours),
        None => Ok(()),
    }
}

/// Prints the scaling table; writes the scaling chart if asked.
fn report_scaling(results: &Path, svg: Option<&Path>, ours: &[String]) -> Result<(), String> {
    let series = scaling::series(&read_records(results)?, ours);
    if series.is_empty() {
        return Err(format!(
            "{}: no load run recorded the server's CPUs (run with --server-pid)",
            results.display()
        ));
    }
    print!("{}", scaling::markdown(&series));
    match svg {
        Some(out) => write_file(out, &chart::scaling_svg(&series)),
        None => Ok(()),
    }
}

fn draw(results: &Path, out: &Path, ours: &[String], by_cores: bool) -> Result<(), String> {
    let records = read_records(results)?;
    if by_cores {
        write_file(out, &chart::scaling_svg(&scaling::series(&records, ours)))
    } else {
        write_chart(&records, out, ours)
    }
}

fn write_file(out: &Path, svg: &str) -> Result<(), String> {
    std::fs::write(out, svg).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

fn write_chart(records: &[Record], out: &Path, ours: &[String]) -> Result<(), String> {
    let tables: Vec<_> = [Class::Kv, Class::Echo]
        .into_iter()
        .map(|class| class_table(records, class, ours))
        .filter(|t| !t.series.is_empty())
        .collect();
    write_file(out, &chart::svg(&tables))
}
