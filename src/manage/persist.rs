//! Webhook definitions in the store (records under `manage/webhook/`), their
//! secrets in a file of their own, readable by the process user only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ManageError;
use super::problem::Problem;
use super::service::{Keys, Record};
use crate::store::Store;

const PREFIX: &str = "manage/webhook/";

pub(super) struct Persist {
    store: Store,
    path: PathBuf,
    /// The secrets as the file holds them, by webhook id.
    secrets: Mutex<BTreeMap<String, Keys>>,
}

/// The records and the secrets found.
type Opened = (Persist, Vec<Record>, BTreeMap<String, Keys>);

fn secrets_error(path: &Path, reason: impl std::fmt::Display) -> ManageError {
    ManageError::Secrets {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl Persist {
    pub(super) fn open(store: Store, path: PathBuf) -> Result<Opened, ManageError> {
        let secrets: BTreeMap<String, Keys> = match std::fs::read(&path) {
            Ok(bytes) => {
                restrict(&path).map_err(|e| secrets_error(&path, e))?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    // The serde message may quote the file: say where only.
                    secrets_error(
                        &path,
                        format!(
                            "not a secrets file (line {}, column {})",
                            e.line(),
                            e.column()
                        ),
                    )
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(secrets_error(&path, e)),
        };
        let mut records = Vec::new();
        for (key, value) in store.records(PREFIX)? {
            match serde_json::from_slice::<Record>(&value) {
                Ok(r) => records.push(r),
                Err(e) => {
                    tracing::error!(record = %key, error = %e, "hookbus manage: a kept webhook definition cannot be read; skipped");
                }
            }
        }
        let persist = Persist {
            store,
            path,
            secrets: Mutex::new(secrets.clone()),
        };
        Ok((persist, records, secrets))
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Keeps a definition, and its secrets when they are new or changed
    /// (the secrets first: a record is never kept without them).
    pub(super) fn save(&self, record: &Record, keys: Option<&Keys>) -> Result<(), Problem> {
        if let Some(keys) = keys {
            let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
            let before = secrets.insert(record.id.clone(), keys.clone());
            if let Err(e) = write_private(&self.path, &secrets) {
                match before {
                    Some(b) => secrets.insert(record.id.clone(), b),
                    None => secrets.remove(&record.id),
                };
                return Err(Problem::internal(format!(
                    "cannot write the secrets file: {}",
                    e.kind()
                )));
            }
        }
        let json = serde_json::to_vec(record).map_err(|e| Problem::internal(e.to_string()))?;
        self.store
            .put_record(&format!("{PREFIX}{}", record.id), &json)
            .map_err(|e| Problem::internal(format!("cannot keep the webhook: {e}")))
    }

    /// Forgets a definition and its secret.
    pub(super) fn remove(&self, id: &str) {
        if let Err(e) = self.store.remove_record(&format!("{PREFIX}{id}")) {
            tracing::error!(webhook = %id, error = %e, "hookbus manage: cannot remove a kept webhook");
        }
        let mut secrets = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        if secrets.remove(id).is_some()
            && let Err(e) = write_private(&self.path, &secrets)
        {
            tracing::error!(webhook = %id, error = %e.kind(), "hookbus manage: cannot rewrite the secrets file");
        }
    }
}

/// Makes `path` readable and writable by its owner only.
fn restrict(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "hookbus manage: the secrets file was readable by others; made 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes the secrets to a new file (mode 0600 from its creation), syncs
/// it, and renames it over `path`: a crash leaves the old file or the new.
fn write_private(path: &Path, secrets: &BTreeMap<String, Keys>) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    let bytes = serde_json::to_vec(secrets).map_err(std::io::Error::other)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
