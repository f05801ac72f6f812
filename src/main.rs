//! The `rosterdrop` command line. Errors are reported with `anyhow` here, at the edge only.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use rosterdrop::admin::Request;
use rosterdrop::config::Config;
use rosterdrop::paths::StateDir;
use rosterdrop::roster::check::check;
use rosterdrop::roster::engine::{NoExternal, Settings};
use rosterdrop::roster::report;
use rosterdrop::sftp::accounts::Accounts;
use rosterdrop::sftp::hostkeys;
use rosterdrop::store::Store;

/// `print!`, `println!`, `eprint!` and `eprintln!` for the commands' own output, without their
/// panic: `rosterdrop history | head -1` on a store of a few hundred batches ended in "failed
/// printing to stdout: Broken pipe", status 101 and a backtrace. A reader that went away ends
/// the output, not the command: it finishes its work and exits with its own status. Another
/// write error is said once on stderr.
macro_rules! out {
    ($($t:tt)*) => { emit(Stream::Out, format_args!($($t)*)) };
}
macro_rules! outln {
    ($($t:tt)*) => {{ out!($($t)*); out!("\n") }};
}
macro_rules! errout {
    ($($t:tt)*) => { emit(Stream::Err, format_args!($($t)*)) };
}
macro_rules! errln {
    ($($t:tt)*) => {{ errout!($($t)*); errout!("\n") }};
}

#[derive(Clone, Copy, PartialEq)]
enum Stream {
    Out,
    Err,
}

fn emit(stream: Stream, args: std::fmt::Arguments) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static OUT_GONE: AtomicBool = AtomicBool::new(false);
    static ERR_GONE: AtomicBool = AtomicBool::new(false);
    let gone = if stream == Stream::Out {
        &OUT_GONE
    } else {
        &ERR_GONE
    };
    if gone.load(Ordering::Relaxed) {
        return;
    }
    let written = match stream {
        Stream::Out => std::io::stdout().lock().write_fmt(args),
        Stream::Err => std::io::stderr().lock().write_fmt(args),
    };
    if let Err(e) = written {
        gone.store(true, Ordering::Relaxed);
        if stream == Stream::Out && e.kind() != std::io::ErrorKind::BrokenPipe {
            errln!("rosterdrop: the output could not be written: {e}");
        }
    }
}

/// Exit codes (contract): 0 accepted, 1 rejected, 2 usage or I/O error, 3 held for an admin's
/// approval.
const EXIT_REJECTED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_HELD: u8 = 3;
/// `status`: no daemon runs.
const EXIT_NOT_RUNNING: u8 = 3;

/// Opens the store for a command that writes it without the daemon. `instead` says what to do
/// while the daemon runs (it holds the store).
fn open_store(config: &std::path::Path, instead: &str) -> anyhow::Result<(Config, Store)> {
    let cfg = Config::load(config)?;
    let sock = rosterdrop::admin::socket_path(&cfg.state_dir);
    if let Ok(Some(_)) = rosterdrop::admin::call_daemon(&sock, &Request::Status, None) {
        anyhow::bail!(
            "the daemon is running and holds the store: {}",
            instead.replace("{state_dir}", &cfg.state_dir.display().to_string())
        );
    }
    let dir = StateDir::at(&cfg.state_dir).db();
    let store =
        Store::open(&dir).with_context(|| format!("opening the store in {}", dir.display()))?;
    rosterdrop::admin::fail_interrupted(&store, &cfg.state_dir);
    Ok((cfg, store))
}

/// Closes a store this process opened: compacts it when it has grown (`Store::close`). The
/// command's work is done by then, so a failed compaction is a warning, not its outcome.
fn close_store(store: Store) -> Option<rosterdrop::store::Compacted> {
    match store.close() {
        Ok(c) => c,
        Err(e) => {
            errln!("warning: the store was not compacted: {e}");
            None
        }
    }
}

#[derive(Parser)]
#[command(
    name = "rosterdrop",
    version,
    about = "Receive, validate, patch and commit school roster bundles"
)]
struct Cli {
    /// Configuration file (TOML). Default: $ROSTERDROP_CONFIG, else ./config/rosterdrop.toml,
    /// else /etc/rosterdrop/rosterdrop.toml; `check` reads one only with --source.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
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
        /// The source whose settings (patching, filters) apply, from the config file.
        #[arg(long)]
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
    },
    /// Show one batch in full.
    Show { batch: u64 },
    /// Apply a batch held by the mass-deletion guard.
    Approve {
        batch: u64,
        /// The name recorded as the one who approved (default: your Unix user).
        #[arg(long = "as", value_name = "NAME")]
        by: Option<String>,
    },
    /// Drop a batch held by the mass-deletion guard.
    Discard {
        batch: u64,
        /// The name recorded as the one who discarded (default: your Unix user).
        #[arg(long = "as", value_name = "NAME")]
        by: Option<String>,
    },
    /// Restore the roster as it was before a source's last applied batch.
    Rollback {
        batch: u64,
        /// The name recorded as the one who rolled back (default: your Unix user).
        #[arg(long = "as", value_name = "NAME")]
        by: Option<String>,
    },
    /// Copy the store's live data into a fresh database and swap it in, giving back the space
    /// sled leaves behind (writing commands do this on their own when the store has grown to
    /// two and a half times its records). The daemon must be stopped.
    Compact {},
    /// Write a source's current roster as a bundle.
    Export {
        #[arg(long)]
        source: String,
        /// apple, oneroster-1.1, oneroster-1.2, or oneroster (the source's own OneRoster
        /// version); default: the source's own format. Another format than the source's is
        /// converted, and what it has no place for is listed.
        #[arg(long)]
        format: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the daemon: SFTP drop-box, intake, pipeline workers, mail, admin socket.
    Serve {},
    /// Show whether the daemon runs, its queues, and each source's last batch.
    Status {},
    /// Manage SFTP accounts.
    Account {
        #[command(subcommand)]
        cmd: AccountCmd,
    },
    /// Manage the OneRoster REST API's clients (OAuth 2 client credentials, OAuth 1.0a).
    ApiClient {
        #[command(subcommand)]
        cmd: ApiClientCmd,
    },
    /// Manage the web console's admin users.
    AdminUser {
        #[command(subcommand)]
        cmd: AdminUserCmd,
    },
    /// Print the SFTP host keys' SHA256 fingerprints (generating the keys if missing).
    Hostkey {},
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

#[derive(Subcommand)]
enum AccountCmd {
    /// Create an account; its password is printed once and stored only as a hash.
    Add {
        name: String,
        #[arg(long)]
        source: String,
    },
    /// Generate a new password (the old one stops working); printed once.
    Passwd { name: String },
    /// Authorize a public key.
    #[command(subcommand)]
    Key(KeyCmd),
    /// List accounts.
    List,
    /// Remove an account.
    Remove { name: String },
}

#[derive(Subcommand)]
enum ApiClientCmd {
    /// Create an API client for one source; its id and secret are printed once (the secret is
    /// stored as an argon2id hash).
    Add {
        name: String,
        #[arg(long)]
        source: String,
        /// A scope it may be granted, repeatable: roster-core.readonly, roster.readonly,
        /// roster-demographics.readonly. Default: roster-core.readonly and roster.readonly.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Also allow OAuth 1.0a signatures (1.1 consumers); the secret is then kept in the
        /// clients file (mode 0600), since a signature's key is the secret itself.
        #[arg(long)]
        oauth1: bool,
        /// Moodle compatibility: every 1.2 success body carries `imsx_statusInfo`.
        #[arg(long)]
        status_info_on_success: bool,
    },
    /// List API clients.
    List,
    /// Generate a new secret (the old one and its tokens stop working); printed once.
    Secret { name: String },
    /// Remove an API client (its tokens stop working).
    Remove { name: String },
}

#[derive(Subcommand)]
enum AdminUserCmd {
    /// Create an admin user of the web console; the password is printed once (stored as an
    /// argon2id hash).
    Add {
        name: String,
        /// A source this admin sees, repeatable; none: every source.
        #[arg(long = "source", value_name = "SOURCE")]
        sources: Vec<String>,
    },
    /// Generate a new password (the old one and its sessions stop working); printed once.
    Passwd { name: String },
    /// List admin users.
    List,
    /// Remove an admin user (their sessions end).
    Remove { name: String },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Authorize the OpenSSH public key in KEYFILE (one line).
    Add { name: String, keyfile: PathBuf },
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
    // The daemon logs at info; commands print their own output and log only warnings.
    let serving = matches!(cli.command, Command::Serve { .. });
    let level = if serving { "info" } else { "warn" };
    rosterdrop::daemon::logging::init(level);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // `errln!`: a stderr that cannot be written does not turn the exit status (75 for
            // a start the daemon should retry) into a panic's 101.
            errln!("rosterdrop: {}", error_text(&e));
            let cause: &(dyn std::error::Error + 'static) = e.as_ref();
            ExitCode::from(if serving {
                rosterdrop::daemon::exit_status_of_failed_start(cause, EXIT_USAGE)
            } else {
                EXIT_USAGE
            })
        }
    }
}

/// An error and its causes on one line, each cause said once: a message that already quotes
/// its cause (`x.toml: No such file or directory`) is not followed by it again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let given = cli.config.clone();
    // Found lazily: `check` and `synth` need no configuration.
    let config = || rosterdrop::config::find(given.as_deref());
    match cli.command {
        Command::Check {
            path,
            out,
            source,
            quiet,
        } => {
            let settings = match (&given, source) {
                (_, Some(s)) => Config::load(&config()?)?.source(&s)?.settings(),
                (Some(_), None) => anyhow::bail!("--config needs --source NAME for check"),
                (None, None) => Settings::default(),
            };
            let outcome = check(&path, &settings, &NoExternal)?;
            let t = std::time::Instant::now();
            report::write_all(&outcome, &out)
                .with_context(|| format!("writing the report into {}", out.display()))?;
            tracing::debug!(ms = t.elapsed().as_millis() as u64, "reports written");
            if !quiet {
                out!("{}", report::summary_text(&outcome));
                outln!("\nReport written to {}", out.display());
            }
            Ok(match outcome.verdict {
                rosterdrop::roster::engine::Verdict::Accepted => 0,
                rosterdrop::roster::engine::Verdict::Held => EXIT_HELD,
                rosterdrop::roster::engine::Verdict::Rejected => EXIT_REJECTED,
            })
        }
        Command::Ingest {
            path,
            source,
            account,
            quiet,
        } => {
            let (cfg, store) = open_store(
                &config()?,
                "put the bundle into {state_dir}/drop/<account>/ (it is taken like an SFTP \
                 upload), or stop the daemon first",
            )?;
            let sc = cfg.source(&source)?.clone();
            let r = rosterdrop::ingest::ingest(
                &store,
                &StateDir::at(&cfg.state_dir).reports(),
                &source,
                &sc,
                &path,
                &account,
            )?;
            let compacted = close_store(store);
            if !quiet {
                if let Some(o) = &r.outcome {
                    out!("{}", report::summary_text(o));
                }
                out!("{}", rosterdrop::store::views::commit_text(&r.batch));
                outln!("\nReport written to {}", r.report_dir.display());
                if let Some(c) = compacted {
                    outln!("{}", rosterdrop::store::views::compacted_text(&c));
                }
            }
            use rosterdrop::store::BatchState::*;
            Ok(match r.batch.state {
                Applied | Unchanged => 0,
                Held => EXIT_HELD,
                _ => EXIT_REJECTED,
            })
        }
        Command::History { source } => admin_cmd(&config()?, Request::History { source }, None),
        Command::Show { batch } => admin_cmd(&config()?, Request::Show { batch }, None),
        Command::Approve { batch, by } => {
            let by = Some(cli_actor(by));
            admin_cmd(&config()?, Request::Approve { batch, by }, None)
        }
        Command::Discard { batch, by } => {
            let by = Some(cli_actor(by));
            admin_cmd(&config()?, Request::Discard { batch, by }, None)
        }
        Command::Rollback { batch, by } => {
            let by = Some(cli_actor(by));
            admin_cmd(&config()?, Request::Rollback { batch, by }, None)
        }
        Command::Status {} => admin_cmd(&config()?, Request::Status, None),
        Command::Compact {} => {
            let (_, store) = open_store(
                &config()?,
                "stop it first (`systemctl stop rosterdrop`); the daemon compacts the store \
                 itself when it has grown",
            )?;
            let c = store.compact_now()?;
            outln!("{}", rosterdrop::store::views::compacted_text(&c));
            Ok(0)
        }
        Command::Export {
            source,
            format,
            out,
        } => {
            let config = config()?;
            // The source's [sources.X.apple] settings go with the request: the daemon may run
            // with the file as it was at its last reload.
            let apple = Config::load(&config)?
                .source(&source)?
                .apple
                .settings(&source);
            admin_cmd(
                &config,
                Request::Export {
                    source,
                    format,
                    apple: Some(apple),
                },
                Some(&out),
            )
        }
        Command::Serve {} => {
            rosterdrop::daemon::serve(&config()?, |made| {
                for (name, source, password) in made {
                    outln!("SFTP account `{name}` (source `{source}`) created on first start; password: {password}");
                    outln!("  shown once; `rosterdrop account passwd {name}` makes a new one");
                }
            })?;
            Ok(0)
        }
        Command::Account { cmd } => {
            let config = config()?;
            let cfg = Config::load(&config)?;
            if let AccountCmd::Add { source, .. } = &cmd {
                // An account whose source is not configured would upload into nothing.
                cfg.source(source).map_err(|_| {
                    anyhow::anyhow!(
                        "no source `{source}` in {}; configured: {}. Add a [sources.{source}] \
                         table first",
                        config.display(),
                        if cfg.sources.is_empty() {
                            "none".to_string()
                        } else {
                            cfg.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    )
                })?;
            } else if !cfg.sftp.accounts_path(&cfg.state_dir).exists() {
                anyhow::bail!(
                    "no accounts yet in {}: create one with `rosterdrop account add NAME --source SOURCE`",
                    cfg.state_dir.display()
                );
            }
            let changed = account(cmd, &cfg.sftp.accounts_path(&cfg.state_dir))?;
            if changed {
                // A running daemon takes the change at once (as on SIGHUP).
                let sock = rosterdrop::admin::socket_path(&cfg.state_dir);
                match rosterdrop::admin::call_daemon(&sock, &Request::Reload, None) {
                    Ok(Some(r)) if r.exit == 0 => {
                        outln!("the running daemon reloaded its accounts")
                    }
                    Ok(Some(r)) => errout!("{}", r.stderr),
                    Ok(None) => {}
                    Err(e) => errln!("rosterdrop: the running daemon was not told: {e}"),
                }
            }
            Ok(0)
        }
        Command::ApiClient { cmd } => {
            use rosterdrop::api::clients::{clients_path, execute, Action};
            let cfg = Config::load(&config()?)?;
            let action = match cmd {
                ApiClientCmd::Add {
                    name,
                    source,
                    scopes,
                    oauth1,
                    status_info_on_success,
                } => Action::Add {
                    name,
                    source,
                    scopes,
                    oauth1,
                    status_info_on_success,
                },
                ApiClientCmd::List => Action::List,
                ApiClientCmd::Secret { name } => Action::Secret { name },
                ApiClientCmd::Remove { name } => Action::Remove { name },
            };
            let sources: Vec<String> = cfg.sources.keys().cloned().collect();
            // A running daemon notices the changed file by itself, within a fraction of a second.
            out!(
                "{}",
                execute(action, &clients_path(&cfg.api, &cfg.state_dir), &sources)?
            );
            Ok(0)
        }
        Command::AdminUser { cmd } => {
            use rosterdrop::console::users::{execute, Action};
            let cfg = Config::load(&config()?)?;
            let action = match cmd {
                AdminUserCmd::Add { name, sources } => Action::Add { name, sources },
                AdminUserCmd::Passwd { name } => Action::Passwd { name },
                AdminUserCmd::List => Action::List,
                AdminUserCmd::Remove { name } => Action::Remove { name },
            };
            let sources: Vec<String> = cfg.sources.keys().cloned().collect();
            // The running console reads the file at every request: nothing needs telling.
            out!(
                "{}",
                execute(action, &cfg.console.users_path(&cfg.state_dir), &sources)?
            );
            Ok(0)
        }
        Command::Hostkey {} => {
            let cfg = Config::load(&config()?)?;
            // Only the daemon makes host keys: these must be the keys it serves.
            if !StateDir::at(&cfg.state_dir).hostkeys().is_dir() {
                anyhow::bail!(
                    "no host keys in {}: the daemon has not started on this state directory yet \
                     (`rosterdrop serve` makes them on its first start)",
                    StateDir::at(&cfg.state_dir).hostkeys().display()
                );
            }
            let keys = hostkeys::load_or_generate(&cfg.state_dir)?;
            for (alg, fp) in hostkeys::fingerprints(&keys) {
                outln!("{alg} {fp}");
            }
            Ok(0)
        }
        Command::Synth {
            format,
            students,
            error_every,
            out,
        } => {
            let size = rosterdrop::roster::synth::Size::scaled(students);
            match format.as_str() {
                "apple" => rosterdrop::roster::synth::apple(&out, size, error_every)?,
                "oneroster" => rosterdrop::roster::synth::oneroster(&out, size, error_every)?,
                other => anyhow::bail!("unknown format `{other}` (apple or oneroster)"),
            }
            Ok(0)
        }
    }
}

/// Runs an admin command through the daemon, or on the store when no daemon runs.
/// Who runs an approve, discard or rollback from the shell: `--as NAME`, or the Unix user
/// (`SUDO_USER` first: an admin who ran it through sudo), or the uid.
fn cli_actor(by: Option<String>) -> rosterdrop::admin::Actor {
    let name = by
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
    rosterdrop::admin::Actor {
        name,
        via: rosterdrop::store::Via::Cli,
    }
}

fn admin_cmd(config: &Path, req: Request, out: Option<&Path>) -> anyhow::Result<u8> {
    let cfg = Config::load(config)?;
    match &req {
        Request::History {
            source: Some(source),
        }
        | Request::Export { source, .. } => {
            cfg.source(source)?;
        }
        _ => {}
    }
    // Admin commands read what the daemon or `ingest` wrote; they never create a store.
    let sock = rosterdrop::admin::socket_path(&cfg.state_dir);
    // `exists` is false for a path this user may not look at: that is said as such, not
    // as a state directory nothing ever ran on.
    let seen = |p: &Path| {
        p.try_exists().with_context(|| {
            format!(
                "cannot look into the state directory {} (run this as the daemon's user, or \
                 with sudo)",
                cfg.state_dir.display()
            )
        })
    };
    if !seen(&StateDir::at(&cfg.state_dir).db())? && !seen(&sock)? {
        if matches!(req, Request::Status) {
            outln!(
                "daemon: not running (it has never run on {})",
                cfg.state_dir.display()
            );
            return Ok(EXIT_NOT_RUNNING);
        }
        anyhow::bail!(
            "no store in {}: no daemon has run and nothing was ingested with this \
             configuration ({})",
            StateDir::at(&cfg.state_dir).db().display(),
            config.display()
        );
    }
    let reply = rosterdrop::admin::run(&cfg.state_dir, &req, Duration::from_secs(15), out)?;
    match out {
        // An export's first line says what was written, and where; what a conversion left
        // out follows.
        Some(out) if reply.exit == 0 => {
            let (first, rest) = reply
                .stdout
                .split_once('\n')
                .unwrap_or((reply.stdout.as_str(), ""));
            outln!("{first} to {}", out.display());
            out!("{rest}");
        }
        _ => out!("{}", reply.stdout),
    }
    errout!("{}", reply.stderr);
    Ok(reply.exit)
}

/// Returns whether the accounts file changed.
fn account(cmd: AccountCmd, path: &Path) -> anyhow::Result<bool> {
    let mut accounts = Accounts::load(path)?;
    let changed = !matches!(cmd, AccountCmd::List);
    match cmd {
        AccountCmd::Add { name, source } => {
            let password = accounts.add(&name, &source)?;
            accounts.save(path)?;
            outln!("account {name} (source {source}) created");
            outln!("password: {password}");
            outln!("This password is shown once and cannot be retrieved; `rosterdrop account passwd {name}` makes a new one.");
        }
        AccountCmd::Passwd { name } => {
            let password = accounts.regenerate_password(&name)?;
            accounts.save(path)?;
            outln!("new password for {name}: {password}");
            outln!("The old password no longer works. This one is shown once.");
        }
        AccountCmd::Key(KeyCmd::Add { name, keyfile }) => {
            let text = std::fs::read_to_string(&keyfile)
                .with_context(|| format!("reading {}", keyfile.display()))?;
            if text.contains("PRIVATE KEY") {
                anyhow::bail!(
                    "{} is a private key, which must stay with the vendor: give its public key \
                     (usually the `.pub` file beside it)",
                    keyfile.display()
                );
            }
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .context("the key file is empty")?;
            let key = accounts.add_key(&name, line)?;
            accounts.save(path)?;
            outln!(
                "key {} {} authorized for {name}",
                key.algorithm(),
                key.fingerprint(russh::keys::HashAlg::Sha256)
            );
        }
        AccountCmd::List => {
            outln!("{:<24} {:<24} {:<9} keys", "account", "source", "password");
            for (name, a) in &accounts.accounts {
                outln!(
                    "{:<24} {:<24} {:<9} {}",
                    name,
                    a.source,
                    if a.password_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    },
                    a.authorized_keys.len()
                );
            }
        }
        AccountCmd::Remove { name } => {
            accounts.remove(&name)?;
            accounts.save(path)?;
            outln!("account {name} removed");
        }
    }
    Ok(changed)
}
