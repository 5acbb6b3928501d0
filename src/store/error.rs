//! The store's errors: what is wrong, with which file, during what; the
//! database's or the system's own error kept as the source.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a store could not be opened, read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be opened or created (missing directory,
    /// permission denied, read-only, in use by another process), or the
    /// settings cannot work.
    #[error("cannot open the store {path}: {problem}")]
    Open {
        /// The store's path.
        path: PathBuf,
        /// What stands in the way.
        #[source]
        problem: OpenProblem,
    },
    /// The file is not a hookbus store, is empty, or is damaged where it
    /// was read. Nothing was changed; `recovered` and `unreadable` say how
    /// far the read got (the records read and skipped before the damage,
    /// when a subscriber was being attached or the store checked; 0
    /// otherwise).
    #[error(
        "the store {path} is damaged or not a store ({during}): {damage} ({recovered} records read, {unreadable} unreadable)"
    )]
    Corrupted {
        /// The store's path.
        path: PathBuf,
        /// What the store was doing when it found the damage.
        during: Operation,
        /// What is wrong.
        #[source]
        damage: Damage,
        /// Records read before the damage.
        recovered: u64,
        /// Records that could not be read as events before it.
        unreadable: u64,
    },
    /// The store failed earlier (a commit failed, or the database
    /// panicked) and writes nothing more: reopen it (restart) once the
    /// cause is fixed; what was committed before is kept.
    #[error("the store {path} has failed and writes nothing more: {during} failed: {fault}")]
    Failed {
        /// The store's path.
        path: PathBuf,
        /// What failed first.
        during: Operation,
        /// How it failed.
        #[source]
        fault: Fault,
    },
    /// The store's write buffer is full: the disk is behind the emitters.
    /// `emit` refuses events for its durable subscribers until a commit
    /// makes room (`publish` waits for it instead).
    #[error(
        "the store {path} is behind: its write buffer is full (the disk is behind the emitters; publish waits for room)"
    )]
    Behind {
        /// The store's path.
        path: PathBuf,
    },
    /// A durable subscriber of this name is already attached to the store.
    #[error(
        "a durable subscriber named {0:?} is already attached to this store; each durable subscriber needs its own name"
    )]
    NameInUse(String),
    /// Reading or writing failed (the store itself has not failed: a
    /// read, a backup or a compaction can be tried again).
    #[error("the store {path}: {during} failed: {fault}")]
    Io {
        /// The store's path.
        path: PathBuf,
        /// What the store was doing.
        during: Operation,
        /// How it failed.
        #[source]
        fault: Fault,
    },
}

impl StoreError {
    pub(crate) fn corrupted(
        path: &std::path::Path,
        during: Operation,
        damage: impl Into<Damage>,
    ) -> StoreError {
        StoreError::Corrupted {
            path: path.to_path_buf(),
            during,
            damage: damage.into(),
            recovered: 0,
            unreadable: 0,
        }
    }

    pub(crate) fn open(path: &std::path::Path, problem: OpenProblem) -> StoreError {
        StoreError::Open {
            path: path.to_path_buf(),
            problem,
        }
    }

    pub(crate) fn io(path: &std::path::Path, during: Operation, fault: Fault) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            during,
            fault,
        }
    }
}

/// Why a store file cannot be opened (see [`StoreError::Open`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenProblem {
    /// [`commit_max`](super::StoreBuilder::commit_max) is 0.
    #[error("commit_max must be at least 1")]
    CommitMaxZero,
    /// [`keep_delivered`](super::StoreBuilder::keep_delivered) has a limit
    /// of 0.
    #[error("keep_delivered needs a limit of at least 1")]
    KeepDeliveredLimitZero,
    /// [`dead_letter_limit`](super::StoreBuilder::dead_letter_limit) is 0.
    #[error("dead_letter_limit must be at least 1")]
    DeadLetterLimitZero,
    /// There is no file (a compaction needs one).
    #[error("no such file")]
    NotFound,
    /// The path is a directory or another special file.
    #[error("not a regular file")]
    NotAFile,
    /// The file is read-only (refused also for root, whom the system
    /// would let write it).
    #[error(
        "the file is read-only, and a store writes to its file (make it writable; a backup can be inspected from a writable copy)"
    )]
    ReadOnly,
    /// The file is open already, in this process or another.
    #[error("the store is already open (in this process or another)")]
    AlreadyOpen,
    /// A backup's destination exists (a backup never overwrites).
    #[error("the file exists already (a backup never overwrites)")]
    Exists,
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    WriterThread(#[source] Cause),
    /// The operating system's error (missing directory, permission
    /// denied, …).
    #[error(transparent)]
    System(Cause),
}

/// What is wrong with a store file (see [`StoreError::Corrupted`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// The file is empty: a store never is, so this one lost its content.
    /// It is not re-created; remove the file to start a new store.
    #[error(
        "the file is empty: a store is never empty, so this one lost its content (it is not re-created; remove the file to start a new store)"
    )]
    Empty,
    /// The file does not start with a store's header.
    #[error("not a hookbus store (no store header)")]
    NotAStore,
    /// The database found the damage (an error or a panic).
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// How a call into the database failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The database (or the system under it) returned an error, kept as
    /// the source.
    #[error(transparent)]
    Error(Cause),
    /// The database panicked (a damaged file can make it); the panic was
    /// caught, and this is its message.
    #[error("the database panicked ({message})")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The writer thread is gone (a commit asked for was never made).
    #[error("the store's writer thread has stopped")]
    WriterStopped,
}

impl Fault {
    /// Whether the database panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, Fault::Panicked { .. })
    }
}

/// What a store was doing when an error came.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Opening the file (and reading its counters).
    Open,
    /// Reading the pending events of a durable subscriber being attached.
    Attach {
        /// The subscriber's name.
        subscriber: String,
    },
    /// Reading records for a call of the API.
    Read,
    /// Checking every record ([`Store::check`](super::Store::check)).
    Check,
    /// A commit of the writer.
    Commit,
    /// The writer thread, outside a commit.
    Writer,
    /// Moving dead letters back to pending
    /// ([`Store::redrive`](super::Store::redrive)).
    Redrive,
    /// Writing a backup ([`Store::backup`](super::Store::backup)).
    Backup {
        /// The backup's file.
        to: PathBuf,
    },
    /// Compacting the file ([`Store::compact`](super::Store::compact)).
    Compact,
    /// Writing an application record
    /// ([`Store::put_record`](super::Store::put_record)).
    WriteRecord,
}

impl Operation {
    /// A short name: `open`, `attach`, `read`, `check`, `commit`, `writer`,
    /// `redrive`, `backup`, `compact`, `write_record`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Operation::Open => "open",
            Operation::Attach { .. } => "attach",
            Operation::Read => "read",
            Operation::Check => "check",
            Operation::Commit => "commit",
            Operation::Writer => "writer",
            Operation::Redrive => "redrive",
            Operation::Backup { .. } => "backup",
            Operation::Compact => "compact",
            Operation::WriteRecord => "write_record",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Open => f.write_str("opening it"),
            Operation::Attach { subscriber } => {
                write!(f, "reading the pending events of {subscriber:?}")
            }
            Operation::Read => f.write_str("reading it"),
            Operation::Check => f.write_str("checking its records"),
            Operation::Commit => f.write_str("a commit"),
            Operation::Writer => f.write_str("its writer"),
            Operation::Redrive => f.write_str("a redrive"),
            Operation::Backup { to } => write!(f, "a backup to {}", to.display()),
            Operation::Compact => f.write_str("compacting it"),
            Operation::WriteRecord => f.write_str("writing a record"),
        }
    }
}

/// The database's or the operating system's own error, shared (so the
/// errors that hold it can be cloned). Displays as that error; its
/// [`source`](std::error::Error::source) is that error's source. Two are
/// equal when they say the same.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Cause {
        Cause(Arc::new(e))
    }

    /// The error itself (a `redb` or `std::io` error), to downcast.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// A database error as a [`Fault`].
pub(crate) fn fault(e: impl std::error::Error + Send + Sync + 'static) -> Fault {
    Fault::Error(Cause::new(e))
}
