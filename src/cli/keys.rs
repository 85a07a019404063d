//! `samgate keys`: generate a key-encryption key, re-wrap sealed secrets under the active one,
//! count what each wraps.

use clap::Subcommand;

use crate::db;

use super::command_app;

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Print a new random key-encryption key (base64 of 32 bytes) for SAMGATE_KEKS.
    Generate,
    /// Re-wrap every sealed secret under the active KEK, in batches, without decrypting it.
    Rotate {
        /// Rows per transaction.
        #[arg(long, default_value_t = 200)]
        batch: i64,
    },
    /// Show how many sealed secrets each KEK wraps.
    Status,
}

/// Runs a `keys` command.
pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        // The key is the command's output, on stdout only; it needs no configuration, since it
        // is how the first key of a ring is made.
        KeysCommand::Generate => println!("{}", crate::vault::generate_key()),
        KeysCommand::Status => {
            let app = command_app().await?;
            println!("active KEK: {}", app.vault.active_kek_id());
            for (kind, kek, count) in db::grants::sealed_by_kek(&app.pool).await? {
                println!("KEK {kek}: {count} {kind}");
            }
        }
        KeysCommand::Rotate { batch } => {
            let app = command_app().await?;
            let report = crate::jobs::key_rotation::run(&app, batch, |done| {
                println!("re-wrapped {done} so far");
            })
            .await?;
            println!(
                "re-wrapped {} sealed secrets under KEK {}",
                report,
                app.vault.active_kek_id()
            );
        }
    }
    Ok(())
}
