//! `authd keys ...`: the signing-key set, managed from the command line.

use std::path::PathBuf;
use std::sync::Arc;

use adapters::crypto::keys::{DEFAULT_KEY_BITS, PrivateKey};
use adapters::system::SystemClock;
use anyhow::Context as _;
use application::use_cases::{KeyView, SigningKeys};
use clap::Subcommand;
use domain::{KeyState, Timestamp};

use crate::config::Config;
use crate::key_files::{self, KeyMaterial};
use crate::wiring;

/// `authd keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key of `JWT_ALG`: published at once, signing after
    /// `KEY_PUBLISH_AHEAD`; the key it replaces stays accepted for as long
    /// as its tokens live.
    Rotate,
    /// Show every key: kid, algorithm, state and times.
    List,
    /// Withdraw a key at once (an emergency: the tokens it signed stop
    /// verifying everywhere within seconds). Retiring the signing key first
    /// makes the newest published key current.
    Retire {
        /// The key's kid (see `authd keys list`). A kid is base64url, so it
        /// may start with `-`: it is taken as the kid, not as an option.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
    /// Write an RSA key pair to files: `<out>/private.pem` (PKCS#8, mode
    /// 0600) and `<out>/public.pem` (SPKI), for a key set that is still
    /// empty (the service imports it at its first start).
    Generate {
        /// Key size in bits.
        #[arg(long, default_value_t = DEFAULT_KEY_BITS)]
        bits: usize,
        /// Output directory.
        #[arg(long, default_value = "keys")]
        out: PathBuf,
    },
}

/// Runs `command`.
///
/// # Errors
/// The database, the key files or the command failed.
pub async fn run(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    if let KeysCommand::Generate { bits, out } = command {
        return generate(bits, &out);
    }
    let keys = {
        let config = config.clone();
        // Never creates the server secret (security review 2, finding 7).
        tokio::task::spawn_blocking(move || KeyMaterial::load_existing(&config)).await??
    };
    let db = wiring::connect(config).await?;
    let manage = wiring::signing_keys(
        config,
        &db,
        &keys.seal,
        Arc::new(SystemClock),
        DEFAULT_KEY_BITS,
    );
    match command {
        KeysCommand::Rotate => {
            let now = application::ports::Clock::now(&SystemClock);
            wiring::check_secret_opens_current_key(&db, &keys.seal, now)
                .await
                .with_context(|| {
                    format!(
                        "the server secret {} does not open the current signing key, so a key \
                         sealed under it would stop every server; nothing was added",
                        config.seal_key_path().display()
                    )
                })?;
            let record = manage.rotate().await?;
            println!(
                "added {} ({}): published now, signing from {}",
                record.kid,
                record.alg,
                rfc3339(record.signs_from)
            );
        }
        KeysCommand::List => print_list(&manage).await?,
        KeysCommand::Retire { kid } => {
            let retired = manage.retire(&kid).await?;
            match retired.now_signing {
                Some(signing) => println!("retired {kid}; {signing} signs from now on"),
                None => println!("retired {kid}"),
            }
        }
        KeysCommand::Generate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

async fn print_list(manage: &SigningKeys) -> anyhow::Result<()> {
    let keys = manage.list().await?;
    println!(
        "{:<44}  {:<5}  {:<8}  {:<24}  {:<24}  until",
        "kid", "alg", "state", "created", "signs from"
    );
    for KeyView { record, state } in keys {
        let until = match state {
            KeyState::Retiring { until, .. } => format!("accepted until {}", rfc3339(until)),
            KeyState::Retired { since } => format!("retired {}", rfc3339(since)),
            KeyState::Next | KeyState::Current => String::new(),
        };
        println!(
            "{:<44}  {:<5}  {:<8}  {:<24}  {:<24}  {until}",
            record.kid,
            record.alg.as_str(),
            state.name(),
            rfc3339(record.created_at),
            rfc3339(record.signs_from)
        );
    }
    Ok(())
}

fn rfc3339(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.unix_millis()).map_or_else(
        || at.unix_millis().to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn generate(bits: usize, out: &std::path::Path) -> anyhow::Result<()> {
    let (private, public) = (out.join("private.pem"), out.join("public.pem"));
    if private.exists() {
        anyhow::bail!("{} exists; move it away first", private.display());
    }
    let key = PrivateKey::generate(bits)?;
    key_files::write_key_pair(&key, &private, &public)?;
    let seal = out.join(key_files::SEAL_KEY_FILE);
    key_files::load_or_create_seal(&seal)?;
    println!(
        "wrote {} and {} (kid {}); the server secret is {}",
        private.display(),
        public.display(),
        key.kid(),
        seal.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Keys {
        #[command(subcommand)]
        command: KeysCommand,
    }

    #[test]
    fn a_kid_that_starts_with_a_hyphen_is_a_kid() {
        // Found by the rotation test: one kid in 64 starts with '-'.
        let kid = "-D3ggk18fTMzlaSc9QwpM47C_K-57o_5gr13ovG2slk";
        let parsed = Keys::try_parse_from(["keys", "retire", kid]).expect("parsed");
        assert!(
            matches!(&parsed.command, KeysCommand::Retire { kid: k } if k == kid),
            "{parsed:?}"
        );
    }
}
