//! `hookbus store`: inspect, check, redrive, compact and back up a durable
//! store file (feature `durable`). The file must not be open in a running
//! application (the store locks it), except through `backup` and the other
//! library calls of that application.

use std::path::PathBuf;
use std::time::SystemTime;

use hookbus::Pattern;
use hookbus::store::{Redrive, Store, StoreError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{EXIT_FAILED, EXIT_IO, Failure};

/// Inspect and repair a durable store file.
///
/// Examples:
///   hookbus store stats outbox.redb
///   hookbus store dead-letters outbox.redb --subscriber orders
///   hookbus store redrive outbox.redb --subscriber orders --type 'order.*' --since 2026-12-07T09:00:00Z
///   hookbus store backup outbox.redb --to outbox-backup.redb
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// What the store holds: pending events per subscriber, dead letters,
    /// kept deliveries, the file's size.
    Stats {
        /// The store file.
        file: PathBuf,
    },
    /// Pending events per subscriber, or with --subscriber the events
    /// themselves (one JSON line each, oldest first).
    Pending {
        /// The store file.
        file: PathBuf,
        /// List this subscriber's pending events.
        #[arg(long)]
        subscriber: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The dead letters (one JSON line each, oldest first).
    DeadLetters {
        /// The store file.
        file: PathBuf,
        /// Only this subscriber's.
        #[arg(long)]
        subscriber: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Move a subscriber's dead letters back to pending: they are delivered
    /// when the application next starts.
    Redrive {
        /// The store file.
        file: PathBuf,
        /// Whose dead letters.
        #[arg(long)]
        subscriber: String,
        /// Only events whose type matches this pattern (e.g. 'order.*').
        #[arg(long = "type", value_name = "PATTERN")]
        event_type: Option<String>,
        /// Only dead letters that failed at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only dead letters that failed before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
    },
    /// Give the space of deleted records back to the file system.
    Compact {
        /// The store file.
        file: PathBuf,
    },
    /// Read every record back; exit code 1 if any cannot be read.
    Check {
        /// The store file.
        file: PathBuf,
    },
    /// Write a consistent copy of the store to a new file.
    Backup {
        /// The store file.
        file: PathBuf,
        /// The new file (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
}

/// A store error as the command's failure: a file that cannot be opened is
/// an I/O failure, a damaged one the answer "no".
fn failure(e: StoreError) -> Failure {
    let code = match e {
        StoreError::Corrupted { .. } => EXIT_FAILED,
        _ => EXIT_IO,
    };
    Failure {
        code,
        message: format!("error: {e}"),
    }
}

fn time_arg(flag: &str, text: Option<&str>) -> Result<Option<SystemTime>, Failure> {
    text.map(|t| {
        OffsetDateTime::parse(t, &Rfc3339)
            .map(SystemTime::from)
            .map_err(|e| {
                Failure::input(format!("error: {flag}: {t:?} is not an RFC 3339 time: {e}"))
            })
    })
    .transpose()
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn run(args: Args) -> Result<(), Failure> {
    match args.action {
        Action::Stats { file } => {
            let store = Store::open(&file).map_err(failure)?;
            let s = store.summary().map_err(failure)?;
            println!("file: {} ({} bytes)", file.display(), s.file_bytes);
            println!("pending: {}", s.pending.values().sum::<u64>());
            for (sub, n) in &s.pending {
                println!("  {sub}: {n}");
            }
            println!("dead letters: {}", s.dead_letters);
            println!("kept deliveries: {}", s.delivered);
        }
        Action::Pending {
            file,
            subscriber,
            limit,
        } => {
            let store = Store::open(&file).map_err(failure)?;
            match subscriber {
                None => {
                    for (sub, n) in store.summary().map_err(failure)?.pending {
                        println!("{sub}: {n}");
                    }
                }
                Some(sub) => {
                    for event in store.pending_events(&sub, limit).map_err(failure)? {
                        println!("{}", serde_json::to_string(&event).unwrap_or_default());
                    }
                }
            }
        }
        Action::DeadLetters {
            file,
            subscriber,
            limit,
        } => {
            let store = Store::open(&file).map_err(failure)?;
            for d in store
                .dead_letters(subscriber.as_deref(), limit)
                .map_err(failure)?
            {
                let line = serde_json::json!({
                    "subscriber": d.subscriber,
                    "failed_at": rfc3339(d.failed_at),
                    "attempts": d.attempts,
                    "reason": d.reason,
                    "event": d.event,
                });
                println!("{line}");
            }
        }
        Action::Redrive {
            file,
            subscriber,
            event_type,
            since,
            before,
        } => {
            let mut filter = Redrive::all();
            if let Some(p) = event_type {
                let pattern =
                    Pattern::new(&p).map_err(|e| Failure::input(format!("error: --type: {e}")))?;
                filter = filter.event_type(pattern);
            }
            if let Some(t) = time_arg("--since", since.as_deref())? {
                filter = filter.failed_since(t);
            }
            if let Some(t) = time_arg("--before", before.as_deref())? {
                filter = filter.failed_before(t);
            }
            let store = Store::open(&file).map_err(failure)?;
            let moved = store.redrive(&subscriber, &filter).map_err(failure)?;
            println!("redriven: {moved} dead letter(s) of {subscriber} are pending again");
        }
        Action::Compact { file } => {
            let (before, after) = Store::compact(&file).map_err(failure)?;
            println!("compacted: {before} -> {after} bytes");
        }
        Action::Check { file } => {
            let store = Store::open(&file).map_err(failure)?;
            let report = store.check().map_err(failure)?;
            println!("pending: {}", report.pending_total());
            for (sub, n) in &report.pending {
                println!("  {sub}: {n}");
            }
            println!("dead letters: {}", report.dead_letters);
            println!("kept deliveries: {}", report.delivered);
            println!("other records: {}", report.other);
            println!("unreadable: {}", report.unreadable.len());
            for r in &report.unreadable {
                println!("  {} {}", r.table, r.key);
            }
            println!("missing: {}", report.missing);
            if !report.is_clean() {
                return Err(Failure {
                    code: EXIT_FAILED,
                    message: format!(
                        "check: {} damaged: {} unreadable, {} missing",
                        file.display(),
                        report.unreadable.len(),
                        report.missing
                    ),
                });
            }
            println!("ok: every record reads back");
        }
        Action::Backup { file, to } => {
            let store = Store::open(&file).map_err(failure)?;
            let copied = store.backup(&to).map_err(failure)?;
            println!("backup: {copied} records copied to {}", to.display());
        }
    }
    Ok(())
}
