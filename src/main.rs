//! The `rosterdrop` command line. Errors are reported with `anyhow` here, at the edge only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use rosterdrop::check::check;
use rosterdrop::config::Config;
use rosterdrop::engine::{NoExternal, Settings};
use rosterdrop::report;
use rosterdrop::store::{Batch, Store};

/// Exit codes (contract): 0 accepted, 1 rejected, 2 usage or I/O error.
const EXIT_REJECTED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const DEFAULT_CONFIG: &str = "config/rosterdrop.toml";

fn open_store(config: &std::path::Path) -> anyhow::Result<(Config, Store)> {
    let cfg = Config::load(config)?;
    let dir = cfg.state_dir.join("db");
    let store =
        Store::open(&dir).with_context(|| format!("opening the store in {}", dir.display()))?;
    Ok((cfg, store))
}

fn fmt_time(secs: u64) -> String {
    let d = rosterdrop::values::Date::from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{d} {:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

fn print_batch_line(b: &Batch) {
    let (a, u, d) = b.totals();
    let patches: u64 = b.patches.values().sum();
    println!(
        "{:>6}  {}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>7}ms",
        b.id,
        fmt_time(b.received_at),
        b.source,
        b.account,
        b.format,
        b.state.label(),
        a,
        u,
        d,
        patches,
        b.duration_ms
    );
}

#[derive(Parser)]
#[command(
    name = "rosterdrop",
    version,
    about = "Receive, validate, patch and commit school roster bundles"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and patch a bundle offline; write the patch summary and modified CSVs.
    Check {
        /// A bundle: a directory of CSV files or a zip.
        path: PathBuf,
        /// Where to write patch-summary.csv, summary.txt, modified/ and modified.zip.
        #[arg(long, default_value = "rosterdrop-check")]
        out: PathBuf,
        /// Configuration file holding the source's settings.
        #[arg(long, requires = "source")]
        config: Option<PathBuf>,
        /// The source whose settings (patching, filters) apply.
        #[arg(long, requires = "config")]
        source: Option<String>,
        /// Print nothing but errors.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a bundle against a source's stored roster and commit it as a batch.
    Ingest {
        path: PathBuf,
        #[arg(long)]
        source: String,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Recorded as the batch's account.
        #[arg(long, default_value = "cli")]
        account: String,
        #[arg(long, short)]
        quiet: bool,
    },
    /// List batches, newest first.
    History {
        #[arg(long)]
        source: Option<String>,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show one batch in full.
    Show {
        batch: u64,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Apply a batch held by the mass-deletion guard.
    Approve {
        batch: u64,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Drop a batch held by the mass-deletion guard.
    Discard {
        batch: u64,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Restore the roster as it was before a source's last applied batch.
    Rollback {
        batch: u64,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Write a source's current roster as a bundle.
    Export {
        #[arg(long)]
        source: String,
        /// apple or oneroster: must be the format the source's roster is kept in.
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Write a synthetic district (benchmarks and tests).
    #[command(hide = true)]
    Synth {
        /// apple or oneroster
        #[arg(long, default_value = "apple")]
        format: String,
        #[arg(long, default_value_t = 1000)]
        students: usize,
        /// About one row in N carries an integrity error (0: none).
        #[arg(long, default_value_t = 0)]
        error_every: usize,
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rosterdrop: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Check {
            path,
            out,
            config,
            source,
            quiet,
        } => {
            let settings = match (config, source) {
                (Some(c), Some(s)) => Config::load(&c)?.source(&s)?.settings(),
                _ => Settings::default(),
            };
            let outcome = check(&path, &settings, &NoExternal)?;
            let t = std::time::Instant::now();
            report::write_all(&outcome, &out)
                .with_context(|| format!("writing the report into {}", out.display()))?;
            tracing::debug!(ms = t.elapsed().as_millis() as u64, "reports written");
            if !quiet {
                print!("{}", report::summary_text(&outcome));
                println!("\nReport written to {}", out.display());
            }
            Ok(if outcome.accepted() { 0 } else { EXIT_REJECTED })
        }
        Command::Ingest {
            path,
            source,
            config,
            account,
            quiet,
        } => {
            let (cfg, store) = open_store(&config)?;
            let sc = cfg.source(&source)?.clone();
            let r = rosterdrop::pipeline::ingest(
                &store,
                &cfg.state_dir.join("reports"),
                &source,
                &sc,
                &path,
                &account,
            )?;
            if !quiet {
                if let Some(o) = &r.outcome {
                    print!("{}", report::summary_text(o));
                }
                print!("{}", rosterdrop::pipeline::commit_text(&r.batch));
                println!("\nReport written to {}", r.report_dir.display());
            }
            use rosterdrop::store::BatchState::*;
            Ok(match r.batch.state {
                Applied | Unchanged => 0,
                Held => 3,
                _ => EXIT_REJECTED,
            })
        }
        Command::History { source, config } => {
            let (_, store) = open_store(&config)?;
            println!(
                "{:>6}  {:<20}  {:<12} {:<10} {:<13} {:<11} {:>8} {:>8} {:>8} {:>8} {:>9}",
                "batch",
                "received",
                "source",
                "account",
                "format",
                "state",
                "adds",
                "updates",
                "deletes",
                "patches",
                "duration"
            );
            for b in store.history(source.as_deref())? {
                print_batch_line(&b);
            }
            Ok(0)
        }
        Command::Show { batch, config } => {
            let (_, store) = open_store(&config)?;
            let b = store.batch(batch)?;
            println!("batch {}  source {}  account {}", b.id, b.source, b.account);
            println!(
                "received {}  took {} ms",
                fmt_time(b.received_at),
                b.duration_ms
            );
            println!(
                "format {} ({})  state {}",
                b.format,
                b.mode,
                b.state.label()
            );
            println!("content sha256 {}", b.content_hash);
            if let Some(r) = &b.rollback_of {
                println!("rollback of batch {r}");
            }
            print!("{}", rosterdrop::pipeline::commit_text(&b));
            if !b.patches.is_empty() {
                println!("patches:");
                for (r, n) in &b.patches {
                    println!("  {r:<20} {n}");
                }
            }
            if let Some(d) = &b.report_dir {
                println!("reports: {d}/ (patch-summary.csv, summary.txt, modified/, modified.zip)");
            }
            Ok(0)
        }
        Command::Approve { batch, config } => {
            let (_, store) = open_store(&config)?;
            let b = store.approve(batch)?;
            print!("{}", rosterdrop::pipeline::commit_text(&b));
            Ok(0)
        }
        Command::Discard { batch, config } => {
            let (_, store) = open_store(&config)?;
            let b = store.discard(batch)?;
            println!("batch {} discarded", b.id);
            Ok(0)
        }
        Command::Rollback { batch, config } => {
            let (_, store) = open_store(&config)?;
            let b = store.rollback(batch)?;
            print!("{}", rosterdrop::pipeline::commit_text(&b));
            Ok(0)
        }
        Command::Export {
            source,
            format,
            out,
            config,
        } => {
            let (_, store) = open_store(&config)?;
            if let (Some(want), Some(have)) = (&format, store.format_of(&source)?) {
                if !matches!(want.as_str(), "apple" | "oneroster") {
                    anyhow::bail!("unknown format `{want}` (apple or oneroster)");
                }
                if (want == "apple") != (have == rosterdrop::schema::Format::Apple) {
                    anyhow::bail!(
                        "source `{source}` keeps a {} roster; exporting it as {want} is not supported yet",
                        have.label()
                    );
                }
            }
            let f = store.export(&source, &out)?;
            println!(
                "exported {} roster of `{source}` to {}",
                f.label(),
                out.display()
            );
            Ok(0)
        }
        Command::Synth {
            format,
            students,
            error_every,
            out,
        } => {
            let size = rosterdrop::synth::Size::scaled(students);
            match format.as_str() {
                "apple" => rosterdrop::synth::apple(&out, size, error_every)?,
                "oneroster" => rosterdrop::synth::oneroster(&out, size, error_every)?,
                other => anyhow::bail!("unknown format `{other}` (apple or oneroster)"),
            }
            Ok(0)
        }
    }
}
