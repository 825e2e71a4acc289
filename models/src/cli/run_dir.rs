//! The run directory, `cnn train --out DIR`: taken before any data is
//! loaded, so that what could go wrong with it is known before training.
//!
//! [`RunDir::open`] creates DIR, takes its lock (`.cnn-train.lock`, created
//! with `create_new` and holding the owner's pid and start time), proves DIR
//! writable with a probe file, and removes the temporary files that dead
//! processes left behind. The lock goes when the [`RunDir`] is dropped; a
//! lock whose process is gone is stale and taken over with a warning.
//!
//! The outputs of a run ([`OUTPUTS`]) are published as one set: they are
//! written into a fresh staging directory inside DIR, then
//! [`RunDir::publish`] swaps them in by renames. If that fails, every file
//! already swapped is put back, so DIR keeps the previous set, and the
//! error names the staging directory holding the new one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::checkpoint;
use super::error::CliError;

/// The lock file inside the run directory.
pub const LOCK_FILE: &str = ".cnn-train.lock";

/// The files of a run's published set, in the order they are swapped in.
pub const OUTPUTS: [&str; 5] = [
    "weights.json",
    "weights.safetensors",
    "metrics.csv",
    "training.svg",
    "training.png",
];

/// Staging directories are `.staging.<pid>.<n>`; the previous set's
/// backup during a swap is `.previous.<pid>.<n>`.
const STAGING: &str = ".staging.";
const PREVIOUS: &str = ".previous.";

/// A process, as a lock file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owner {
    pid: u32,
    /// Start time in clock ticks since boot (Linux `/proc/<pid>/stat`
    /// field 22): tells a live owner from a new process that reuses its pid.
    start: Option<u64>,
}

impl Owner {
    fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        let start = match words.next() {
            Some(w) => Some(w.parse().ok()?),
            None => None,
        };
        Some(Owner { pid, start })
    }

    fn line(&self) -> String {
        match self.start {
            Some(start) => format!("{} {start}\n", self.pid),
            None => format!("{}\n", self.pid),
        }
    }

    /// Whether the process still runs. Where that cannot be known (no
    /// `/proc`), any process but this one is taken to run.
    fn alive(&self) -> bool {
        if !Path::new("/proc/self/stat").exists() {
            return self.pid != std::process::id();
        }
        match start_time(self.pid) {
            Some(now) => self.start.is_none_or(|start| start == now),
            // Running, but its stat is unreadable (another user's process
            // under a restrictive /proc): take it to run.
            None => Path::new(&format!("/proc/{}", self.pid)).exists(),
        }
    }
}

/// The start time of process `pid` from `/proc`, if it runs (Linux).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses,
    // so count fields after the last ')'; field 22 is the 20th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether a process with this pid runs (or may run).
fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || Owner { pid, start: None }.alive()
}

/// The run directory, locked for this process while the value lives.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    lock: PathBuf,
    owner: Owner,
    /// The directories `open` created, deepest first: removed on drop if
    /// still empty, so a run that failed early leaves nothing behind.
    created: Vec<PathBuf>,
}

impl RunDir {
    /// Creates `path` if needed, locks it, checks that files can be written
    /// and renamed in it, and removes stale temporary files.
    pub fn open(path: &Path) -> Result<RunDir, CliError> {
        let created: Vec<PathBuf> = path
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
            .map(Path::to_owned)
            .collect();
        fs::create_dir_all(path).map_err(CliError::io("cannot create directory", path))?;
        let owner = Owner::me();
        let lock = path.join(LOCK_FILE);
        if let Err(e) = take_lock(path, &lock, owner) {
            remove_empty(&created);
            return Err(e);
        }
        let dir = RunDir {
            path: path.to_owned(),
            lock,
            owner,
            created,
        };
        // Named like a temporary file, so a leftover is cleaned like one.
        let probe = path.join(format!(".probe.{}.0.tmp", owner.pid));
        cnn_runtime::weights::write_atomic(&probe, b"cnn train checks that it can write here\n")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|source| CliError::NotWritable {
                dir: path.to_owned(),
                file: probe.clone(),
                source,
            })?;
        dir.clean_stale();
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the checkpoint goes.
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join(checkpoint::FILE_NAME)
    }

    /// Removes the temporary files (`write_atomic`'s `.<name>.<pid>.<n>.tmp`,
    /// the plot's `.training.<pid>.tmp.png`) of processes that no longer
    /// run, and warns about staging directories they left (a publish that
    /// failed leaves its outputs there, so they are not removed).
    fn clean_stale(&self) {
        let Ok(entries) = fs::read_dir(&self.path) else {
            return;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_file() {
                if temp_file_pid(name).is_some_and(|pid| !pid_alive(pid))
                    && fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            } else if kind.is_dir() && leftover_dir_pid(name).is_some_and(|pid| !pid_alive(pid)) {
                warn!(
                    "{} holds outputs of an earlier run that were not published; move or delete it",
                    entry.path().display()
                );
            }
        }
        if removed > 0 {
            warn!(
                "removed {removed} temporary file{} left in {} by runs that stopped",
                if removed == 1 { "" } else { "s" },
                self.path.display()
            );
        }
    }

    /// A fresh, empty staging directory for the outputs.
    pub fn staging(&self) -> Result<PathBuf, CliError> {
        fresh_dir(&self.path, STAGING, self.owner.pid)
    }

    /// Swaps the files of `staging` into the run directory as one set (see
    /// the module doc) and removes `staging`; returns the published paths
    /// in [`OUTPUTS`] order. Files of the previous set that `staging` lacks
    /// (a PNG that could not be drawn) are removed, so no file of an older
    /// run stays beside the new ones.
    pub fn publish(&self, staging: &Path) -> Result<Vec<PathBuf>, CliError> {
        let failed = |reason: String| CliError::Publish {
            dir: self.path.clone(),
            reason,
            staging: staging.to_owned(),
        };
        for name in OUTPUTS {
            let target = self.path.join(name);
            if let Ok(meta) = fs::symlink_metadata(&target) {
                if meta.is_dir() {
                    return Err(failed(format!("{} is a directory", target.display())));
                }
            }
        }
        // Every staged file on disk before any rename makes it visible
        // (the plots are not written through `write_atomic`).
        for name in OUTPUTS {
            if let Ok(file) = fs::File::open(staging.join(name)) {
                let _ = file.sync_all();
            }
        }
        let backup = fresh_dir(&self.path, PREVIOUS, self.owner.pid).map_err(|e| failed(e.to_string()))?;
        let swapped = swap_in(&self.path, staging, &backup, &mut |from, to| fs::rename(from, to));
        match swapped {
            Ok(published) => {
                sync_dir(&self.path);
                let _ = fs::remove_dir_all(&backup);
                let _ = fs::remove_dir(staging);
                Ok(published)
            }
            Err(SwapError::RolledBack(reason)) => {
                let _ = fs::remove_dir_all(&backup);
                Err(failed(reason))
            }
            Err(SwapError::Stuck(reason)) => Err(failed(format!(
                "{reason}; the previous outputs that could not be put back are in {}",
                backup.display()
            ))),
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // Only our own lock: never one a later process took over.
        let ours = fs::read_to_string(&self.lock).is_ok_and(|text| Owner::parse(&text) == Some(self.owner));
        if ours {
            let _ = fs::remove_file(&self.lock);
        }
        remove_empty(&self.created);
    }
}

/// Removes the directories of `created` (deepest first) while they are
/// empty.
fn remove_empty(created: &[PathBuf]) {
    for dir in created {
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
}

/// Creates `lock` holding `owner`, taking over a stale one.
fn take_lock(dir: &Path, lock: &Path, owner: Owner) -> Result<(), CliError> {
    for attempt in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(lock) {
            Ok(mut file) => {
                let written = file
                    .write_all(owner.line().as_bytes())
                    .and_then(|()| file.sync_all());
                return written.map_err(|source| CliError::NotWritable {
                    dir: dir.to_owned(),
                    file: lock.to_owned(),
                    source,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                let text = fs::read_to_string(lock).unwrap_or_default();
                match Owner::parse(&text) {
                    Some(other) if other.pid == owner.pid && other.start == owner.start => {
                        return Err(CliError::Locked {
                            dir: dir.to_owned(),
                            lock: lock.to_owned(),
                            holder: format!("this process ({})", other.pid),
                        })
                    }
                    Some(other) if other.alive() => {
                        return Err(CliError::Locked {
                            dir: dir.to_owned(),
                            lock: lock.to_owned(),
                            holder: format!("process {}", other.pid),
                        })
                    }
                    Some(other) => {
                        warn!(
                            "{} was left by process {}, which no longer runs; taking it over",
                            lock.display(),
                            other.pid
                        );
                        fs::remove_file(lock).map_err(CliError::io("cannot remove stale lock", lock))?;
                    }
                    None => {
                        return Err(CliError::Locked {
                            dir: dir.to_owned(),
                            lock: lock.to_owned(),
                            holder: "an unknown process (the lock names none)".to_owned(),
                        })
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(CliError::Locked {
                    dir: dir.to_owned(),
                    lock: lock.to_owned(),
                    holder: "another process".to_owned(),
                })
            }
            Err(source) => {
                return Err(CliError::NotWritable {
                    dir: dir.to_owned(),
                    file: lock.to_owned(),
                    source,
                })
            }
        }
    }
    unreachable!("the second attempt returns")
}

/// The pid in a temporary file name: `.<name>.<pid>.<n>.tmp` or
/// `.<name>.<pid>.tmp.png`.
fn temp_file_pid(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?;
    if let Some(rest) = inner.strip_suffix(".tmp.png") {
        return rest.rsplit_once('.')?.1.parse().ok();
    }
    let rest = inner.strip_suffix(".tmp")?;
    let (rest, counter) = rest.rsplit_once('.')?;
    counter.parse::<u64>().ok()?;
    rest.rsplit_once('.')?.1.parse().ok()
}

/// The pid in a staging or backup directory name.
fn leftover_dir_pid(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(STAGING)
        .or_else(|| name.strip_prefix(PREVIOUS))?;
    rest.split('.').next()?.parse().ok()
}

/// Creates `<dir>/<prefix><pid>.<n>` for the first free `n`.
fn fresh_dir(dir: &Path, prefix: &str, pid: u32) -> Result<PathBuf, CliError> {
    for n in 0u32.. {
        let path = dir.join(format!("{prefix}{pid}.{n}"));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(CliError::io("cannot create directory", &path)(e)),
        }
    }
    unreachable!("the loop returns")
}

/// Makes renames in `dir` durable where the platform allows.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// How a swap failed.
#[derive(Debug, PartialEq)]
enum SwapError {
    /// The directory holds the previous set again.
    RolledBack(String),
    /// Putting the previous set back failed too.
    Stuck(String),
}

/// One change `swap_in` made, to undo in reverse.
enum Done {
    /// `name` was renamed from staging over the target; `had_old` says if a
    /// previous file was there (its copy is in the backup).
    Replaced { name: &'static str, had_old: bool },
    /// The previous `name` was removed (its copy is in the backup).
    Removed { name: &'static str },
}

/// Publishes the files of `staging` into `dir`: each previous output is
/// first hard-linked (or copied) into `backup`, then every new file is
/// renamed over its target, so each name always holds a whole file. On a
/// failure the changes are undone in reverse: new files go back to
/// `staging`, previous ones come back from `backup`. `rename` is
/// `fs::rename` (a parameter so tests can make it fail).
fn swap_in(
    dir: &Path,
    staging: &Path,
    backup: &Path,
    rename: &mut dyn FnMut(&Path, &Path) -> io::Result<()>,
) -> Result<Vec<PathBuf>, SwapError> {
    for name in OUTPUTS {
        let old = dir.join(name);
        if old.exists() {
            let kept = backup.join(name);
            fs::hard_link(&old, &kept)
                .or_else(|_| fs::copy(&old, &kept).map(drop))
                .map_err(|e| {
                    SwapError::RolledBack(format!("cannot keep a copy of {}: {e}", old.display()))
                })?;
        }
    }
    let mut done = Vec::new();
    let mut published = Vec::new();
    for name in OUTPUTS {
        let (new, target) = (staging.join(name), dir.join(name));
        let had_old = backup.join(name).exists();
        let step = if new.exists() {
            rename(&new, &target).map(|()| {
                published.push(target.clone());
                Done::Replaced { name, had_old }
            })
        } else if had_old {
            fs::remove_file(&target).map(|()| Done::Removed { name })
        } else {
            continue;
        };
        match step {
            Ok(d) => done.push(d),
            Err(e) => {
                let reason = format!("cannot move {} to {}: {e}", new.display(), target.display());
                return Err(undo(dir, staging, backup, done, reason, rename));
            }
        }
    }
    Ok(published)
}

fn undo(
    dir: &Path,
    staging: &Path,
    backup: &Path,
    done: Vec<Done>,
    reason: String,
    rename: &mut dyn FnMut(&Path, &Path) -> io::Result<()>,
) -> SwapError {
    let mut stuck = Vec::new();
    for d in done.into_iter().rev() {
        let restored = match d {
            Done::Replaced { name, had_old } => rename(&dir.join(name), &staging.join(name)).and_then(|()| {
                if had_old {
                    rename(&backup.join(name), &dir.join(name))
                } else {
                    Ok(())
                }
            }),
            Done::Removed { name } => rename(&backup.join(name), &dir.join(name)),
        };
        if let Err(e) = restored {
            stuck.push(e.to_string());
        }
    }
    if stuck.is_empty() {
        SwapError::RolledBack(reason)
    } else {
        SwapError::Stuck(format!(
            "{reason}; then putting the previous set back failed: {}",
            stuck.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("cnn-run-dir-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("mkdir");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|_| "<missing>".to_owned())
    }

    /// Sets up DIR with a previous set (no PNG) and a staging dir with a
    /// new one.
    fn setup(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (dir, staging, backup) = (root.join("run"), root.join("staging"), root.join("backup"));
        for d in [&dir, &staging, &backup] {
            fs::create_dir_all(d).expect("mkdir");
        }
        for name in &OUTPUTS[..4] {
            fs::write(dir.join(name), format!("old {name}")).expect("write");
        }
        for name in OUTPUTS {
            fs::write(staging.join(name), format!("new {name}")).expect("write");
        }
        (dir, staging, backup)
    }

    #[test]
    fn a_swap_publishes_the_whole_new_set() {
        let root = Scratch::new("swap");
        let (dir, staging, backup) = setup(&root.0);
        fs::remove_file(staging.join("training.svg")).expect("rm");
        let published = swap_in(&dir, &staging, &backup, &mut |a, b| fs::rename(a, b)).expect("swap");
        assert_eq!(published.len(), 4);
        for name in OUTPUTS {
            let want = if name == "training.svg" {
                "<missing>".to_owned()
            } else {
                format!("new {name}")
            };
            assert_eq!(read(&dir.join(name)), want, "{name}");
        }
    }

    /// A rename that fails half-way leaves the previous set in place and
    /// the new one in staging.
    #[test]
    fn a_failed_swap_puts_everything_back() {
        for fail_at in 0..5 {
            let root = Scratch::new(&format!("undo-{fail_at}"));
            let (dir, staging, backup) = setup(&root.0);
            let mut calls = 0;
            let mut rename = |a: &Path, b: &Path| {
                calls += 1;
                if calls == fail_at + 1 {
                    Err(io::Error::other("disk on fire"))
                } else {
                    fs::rename(a, b)
                }
            };
            let err = swap_in(&dir, &staging, &backup, &mut rename).expect_err("fails");
            assert!(
                matches!(&err, SwapError::RolledBack(r) if r.contains("disk on fire")),
                "{err:?}"
            );
            for name in OUTPUTS {
                let old = if name == "training.png" {
                    "<missing>".to_owned()
                } else {
                    format!("old {name}")
                };
                assert_eq!(read(&dir.join(name)), old, "{name}, failing at rename {fail_at}");
                assert_eq!(read(&staging.join(name)), format!("new {name}"), "{name}");
            }
        }
    }

    #[test]
    fn temporary_names_give_their_pid() {
        assert_eq!(temp_file_pid(".weights.json.4242.0.tmp"), Some(4242));
        assert_eq!(temp_file_pid(".checkpoint.safetensors.17.3.tmp"), Some(17));
        assert_eq!(temp_file_pid(".training.99.tmp.png"), Some(99));
        assert_eq!(temp_file_pid("weights.json"), None);
        assert_eq!(temp_file_pid(".notes.tmp"), None);
        assert_eq!(leftover_dir_pid(".staging.12.0"), Some(12));
        assert_eq!(leftover_dir_pid(".previous.12.3"), Some(12));
        assert_eq!(leftover_dir_pid("runs"), None);
        assert_eq!(
            Owner::parse("12 345\n"),
            Some(Owner {
                pid: 12,
                start: Some(345)
            })
        );
        assert_eq!(Owner::parse("12\n"), Some(Owner { pid: 12, start: None }));
        assert_eq!(Owner::parse(""), None);
        assert!(Owner::me().alive());
    }
}
