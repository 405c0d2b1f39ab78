//! Files that hold people's data (the database and its WAL, the secret key, the outbox) are
//! readable by the service's own user alone: folders 0700 and files 0600, set explicitly rather
//! than left to the umask.

use std::io;
use std::path::Path;

/// Mode of the folders Enlace creates.
pub const FOLDER_MODE: u32 = 0o700;
/// Mode of the files Enlace creates.
pub const FILE_MODE: u32 = 0o600;

/// Creates `path` and any missing parents, each created folder 0700. A folder that already
/// exists is left as it is (it may be shared on purpose); `warn_if_open` says so in the log.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(FOLDER_MODE);
    }
    builder.create(path)
}

/// Logs a warning when others than the owner may enter the folder `path`.
pub fn warn_if_open(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    folder = %path.display(),
                    mode = format!("{mode:o}"),
                    "the data folder is open to other users; chmod 700 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Creates the empty file `path` with mode 0600 unless it exists; an existing file that others
/// may read is narrowed to 0600. Either way `path` is then private to the owner.
pub fn ensure_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => narrow(path).map(drop),
        Err(e) => Err(e),
    }
}

/// Narrows an existing file that others may read or write to 0600; true when it did. A file
/// that does not exist is left alone (false).
pub fn narrow(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))?;
            tracing::info!(file = %path.display(), was = format!("{mode:o}"), "file made private (0600)");
            return Ok(true);
        }
        Ok(false)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}
