//! Reading one file that a repository (or the command line) names: a regular file only, inside
//! the repository when there is one, and never more than a cap.
//!
//! A FIFO or a device blocks or never ends when read, and a symlink may lead anywhere, so the
//! checks come before `open` (metadata does not open), and are made again on the opened file
//! in case the name was swapped in between. Messages name the file by its name in the
//! repository, never by a resolved path, and never quote what the file holds.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Resolves `path` (following symlinks) and checks it stays under `root`, itself resolved.
/// The check is on the resolved path, so `..`, encoded names and symlinks out of the tree all
/// fail the same way. `shown` names the entry in the message.
pub fn inside(root: &Path, path: &Path, shown: &str) -> Result<PathBuf> {
    let resolved = fs::canonicalize(path)
        .map_err(|e| Error::model_load(format!("{shown} cannot be resolved: {}", reason(&e))))?;
    if resolved.starts_with(root) {
        Ok(resolved)
    } else {
        Err(Error::model_load(format!(
            "{shown} points outside the repository"
        )))
    }
}

/// Checks, without opening it, that `path` is a regular file of at most `cap` bytes; returns
/// its metadata.
pub fn check_regular(path: &Path, cap: u64, shown: &str) -> Result<fs::Metadata> {
    let meta = fs::metadata(path)
        .map_err(|e| Error::model_load(format!("{shown} cannot be read: {}", reason(&e))))?;
    regular_and_small(&meta, cap, shown)?;
    Ok(meta)
}

/// Reads `path` whole if it is a regular file of at most `cap` bytes (inside `root`, when
/// given, which must be resolved already). A file that grows while it is read is cut off at
/// `cap + 1` bytes and refused, so memory stays bounded whatever happens on disk.
pub fn read_capped(root: Option<&Path>, path: &Path, cap: u64, shown: &str) -> Result<Vec<u8>> {
    let path = match root {
        Some(root) => inside(root, path, shown)?,
        None => path.to_path_buf(),
    };
    check_regular(&path, cap, shown)?;
    let unreadable =
        |e: std::io::Error| Error::model_load(format!("{shown} cannot be read: {}", reason(&e)));
    let file = File::open(&path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    regular_and_small(&meta, cap, shown)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(cap, shown));
    }
    Ok(bytes)
}

fn regular_and_small(meta: &fs::Metadata, cap: u64, shown: &str) -> Result<()> {
    if !meta.is_file() {
        return Err(Error::model_load(format!(
            "{shown} is not a regular file (FIFOs, sockets and devices are never read)"
        )));
    }
    if meta.len() > cap {
        return Err(too_large(cap, shown));
    }
    Ok(())
}

fn too_large(cap: u64, shown: &str) -> Error {
    let size = match cap {
        c if c >= 1 << 30 && c % (1 << 30) == 0 => format!("{} GiB", c >> 30),
        c if c >= 1 << 20 && c % (1 << 20) == 0 => format!("{} MiB", c >> 20),
        c if c >= 1 << 10 && c % (1 << 10) == 0 => format!("{} KiB", c >> 10),
        c => format!("{c} bytes"),
    };
    Error::model_load(format!("{shown} is larger than {size}"))
}

/// The OS's reason without the path it may carry.
pub fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("inferd-files-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(fs::canonicalize(p).unwrap())
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn regular_files_inside_under_the_cap_are_read() {
        let dir = TempDir::new("ok");
        fs::write(dir.0.join("a"), "hello").unwrap();
        let bytes = read_capped(Some(&dir.0), &dir.0.join("a"), 5, "a").unwrap();
        assert_eq!(bytes, b"hello");
        let err = read_capped(Some(&dir.0), &dir.0.join("a"), 4, "a").unwrap_err();
        assert_eq!(err.message, "a is larger than 4 bytes");
    }

    #[test]
    fn devices_fifos_and_escapes_are_refused_without_reading() {
        let dir = TempDir::new("refused");
        symlink("/dev/zero", dir.0.join("zero")).unwrap();
        // Without a root, /dev/zero is refused as a device, not read until memory runs out.
        let err = read_capped(None, &dir.0.join("zero"), 1 << 30, "zero").unwrap_err();
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );
        let err = read_capped(Some(&dir.0), &dir.0.join("zero"), 1 << 30, "zero").unwrap_err();
        assert_eq!(err.message, "zero points outside the repository");
        let status = std::process::Command::new("mkfifo")
            .arg(dir.0.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        // Opening a FIFO with no writer would block forever; this returns at once.
        let err = read_capped(Some(&dir.0), &dir.0.join("fifo"), 10, "fifo").unwrap_err();
        assert!(
            err.message.contains("not a regular file"),
            "{}",
            err.message
        );
        let err = read_capped(Some(&dir.0), &dir.0.join("missing"), 10, "missing").unwrap_err();
        assert_eq!(err.message, "missing cannot be resolved: no such file");
        assert_eq!(too_large(1 << 30, "m").message, "m is larger than 1 GiB");
        assert_eq!(too_large(64 << 10, "c").message, "c is larger than 64 KiB");
    }
}
