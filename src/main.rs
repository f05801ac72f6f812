use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use rosterdrop::accounts::Accounts;
use rosterdrop::sftp::{hostkeys, FileConfig, Server};

/// rosterdrop: receive, validate, patch and commit school roster bundles.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Config file (TOML: `state_dir`, `[sftp]`, `[sources.*]`).
    #[arg(long, global = true, default_value = "config/rosterdrop.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (for now: the SFTP server).
    Serve,
    /// Manage SFTP accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Print the SFTP host keys' SHA256 fingerprints (generating the keys if missing).
    Hostkey,
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
enum KeyCmd {
    /// Authorize the OpenSSH public key in KEYFILE (one line).
    Add { name: String, keyfile: PathBuf },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let file = FileConfig::load(&cli.config)?;
    let accounts_path = file.sftp.accounts_path(&file.state_dir);
    match cli.command {
        Command::Serve => serve(file),
        Command::Account(cmd) => account(cmd, &accounts_path),
        Command::Hostkey => {
            let keys = hostkeys::load_or_generate(&file.state_dir)?;
            for (alg, fp) in hostkeys::fingerprints(&keys) {
                println!("{alg} {fp}");
            }
            Ok(())
        }
    }
}

fn account(cmd: AccountCmd, path: &Path) -> Result<()> {
    let mut accounts = Accounts::load(path)?;
    match cmd {
        AccountCmd::Add { name, source } => {
            let password = accounts.add(&name, &source)?;
            accounts.save(path)?;
            println!("account {name} (source {source}) created");
            println!("password: {password}");
            println!("This password is shown once and cannot be retrieved; `rosterdrop account passwd {name}` makes a new one.");
        }
        AccountCmd::Passwd { name } => {
            let password = accounts.regenerate_password(&name)?;
            accounts.save(path)?;
            println!("new password for {name}: {password}");
            println!("The old password no longer works. This one is shown once.");
        }
        AccountCmd::Key(KeyCmd::Add { name, keyfile }) => {
            let text = std::fs::read_to_string(&keyfile)
                .with_context(|| format!("reading {}", keyfile.display()))?;
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .context("the key file is empty")?;
            let key = accounts.add_key(&name, line)?;
            accounts.save(path)?;
            println!(
                "key {} {} authorized for {name}",
                key.algorithm(),
                key.fingerprint(russh::keys::HashAlg::Sha256)
            );
        }
        AccountCmd::List => {
            println!("{:<24} {:<24} {:<9} keys", "account", "source", "password");
            for (name, a) in &accounts.accounts {
                println!(
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
            println!("account {name} removed");
        }
    }
    Ok(())
}

fn serve(file: FileConfig) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let accounts_path = file.sftp.accounts_path(&file.state_dir);
        let accounts = Arc::new(RwLock::new(Accounts::load(&accounts_path)?));
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let server = Server::new(&file.state_dir, file.sftp.clone(), accounts.clone(), tx)?;
        for (alg, fp) in server.host_key_fingerprints() {
            tracing::info!(algorithm = %alg, fingerprint = %fp, "SFTP host key");
        }
        // Until the intake issue lands, completed uploads are only logged.
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                tracing::info!(account = %ev.account, source = %ev.source, path = %ev.path, bytes = ev.size, "upload ready for intake");
            }
        });
        // SIGHUP reloads the accounts without dropping sessions.
        let reload = accounts.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match Accounts::load(&accounts_path) {
                    Ok(a) => {
                        let n = a.accounts.len();
                        *reload.write().unwrap_or_else(|p| p.into_inner()) = a;
                        tracing::info!(accounts = n, "accounts reloaded");
                    }
                    Err(e) => tracing::error!(error = %e, "accounts not reloaded"),
                }
            }
        });
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        server.run(shutdown).await?;
        anyhow::Ok(())
    })
}
