//! The `rosterdrop` command line. Errors are reported with `anyhow` here, at the edge only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use rosterdrop::check::check;
use rosterdrop::config::Config;
use rosterdrop::engine::{NoExternal, Settings};
use rosterdrop::report;

/// Exit codes (contract): 0 accepted, 1 rejected, 2 usage or I/O error.
const EXIT_REJECTED: u8 = 1;
const EXIT_USAGE: u8 = 2;

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
