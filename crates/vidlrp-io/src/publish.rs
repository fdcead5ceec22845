//! [`Outputs`]: every output of a command is written into a staging path next to its target and
//! published only when the whole command succeeded, so a failing command leaves nothing new.
//!
//! ```
//! use vidlrp_io::Outputs;
//! # let dir = std::env::temp_dir().join(format!("vidlrp-doc-publish-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let mut out = Outputs::new();
//! let report = out.file(&dir.join("report.txt")).unwrap();
//! let pics = out.dir(&dir.join("pics")).unwrap();
//! std::fs::write(&report, "ok").unwrap();
//! std::fs::write(pics.join("a.png"), "png").unwrap();
//! assert!(!dir.join("report.txt").exists()); // nothing is visible before publishing
//! out.publish().unwrap();
//! assert!(dir.join("pics/a.png").exists());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
//!
//! Dropping an [`Outputs`] without publishing removes what was staged. Publishing first checks
//! every target for a conflict (a file where a directory goes, or the reverse) and then renames
//! the staged paths into place; should a rename still fail, the renames already done are undone
//! and replaced files restored, so the targets are as they were before the command.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::{IoError, Result};

/// A file or directory output of a command, staged next to its target.
#[derive(Debug)]
struct Staged {
    target: PathBuf,
    staged: PathBuf,
    is_dir: bool,
}

/// What publishing did to one path, so it can be undone.
#[derive(Debug)]
enum Done {
    /// A path that did not exist before.
    Created(PathBuf),
    /// A file that replaced another, kept under `backup` until the end.
    Replaced { target: PathBuf, backup: PathBuf },
}

/// The outputs of one command: staged until [`Outputs::publish`], removed if dropped before.
#[derive(Debug, Default)]
pub struct Outputs {
    staged: Vec<Staged>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Every staging path of this process not yet published or dropped, for [`remove_staged`].
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes every staging path of this process that is neither published nor dropped: for a
/// signal handler that ends the process (Ctrl-C, `SIGTERM`), where no destructor runs. Targets
/// are never touched.
pub fn remove_staged() {
    for p in live().drain(..) {
        remove(&p);
    }
}

/// A hidden sibling of `target` unique to this process: `.vidlrp-<tag>-<pid>-<k>.name`
/// (ending in the target's name, so writers that go by the extension, such as image
/// encoders, write the right format).
fn sibling(target: &Path, tag: &str) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| IoError::format(target, "not a file or directory name"))?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let k = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Unpredictable: a staged directory is made with `create_dir`, which fails on anything
    // planted under its name; a staged file is renamed over, never opened through.
    Ok(dir.join(format!(
        ".vidlrp-{tag}-{}-{k}-{}.{}",
        std::process::id(),
        crate::unpredictable_token(),
        name.to_string_lossy()
    )))
}

fn parent_must_exist(target: &Path) -> Result<()> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if dir.is_dir() {
        Ok(())
    } else {
        Err(IoError::format(
            target,
            format!("the directory {} does not exist", dir.display()),
        ))
    }
}

fn remove(path: &Path) {
    let _ = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
}

impl Outputs {
    /// No outputs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stages the file `target`: returns the path to write it at.
    ///
    /// **Errors** if `target`'s directory does not exist or `target` is staged already.
    pub fn file(&mut self, target: &Path) -> Result<PathBuf> {
        self.stage(target, false)
    }

    /// Stages the directory `target`: returns an empty directory to fill. If `target` exists,
    /// publishing adds the staged entries to it (replacing files of the same names).
    ///
    /// **Errors** if `target`'s parent does not exist, or the staging directory cannot be made.
    pub fn dir(&mut self, target: &Path) -> Result<PathBuf> {
        self.stage(target, true)
    }

    fn stage(&mut self, target: &Path, is_dir: bool) -> Result<PathBuf> {
        parent_must_exist(target)?;
        if self.staged.iter().any(|s| s.target == target) {
            return Err(IoError::format(target, "is given as two outputs"));
        }
        let staged = sibling(target, "stage")?;
        if is_dir {
            fs::create_dir(&staged).map_err(|e| IoError::io(&staged, e))?;
        }
        live().push(staged.clone());
        self.staged.push(Staged {
            target: target.to_path_buf(),
            staged: staged.clone(),
            is_dir,
        });
        Ok(staged)
    }

    /// Moves every staged output into place, all or nothing. Returns the targets.
    ///
    /// **Errors** (leaving every target as it was) if a staged file was never written, a
    /// target is in the way (a directory where a file goes or the reverse), or a rename fails.
    pub fn publish(mut self) -> Result<Vec<PathBuf>> {
        self.publish_inner(usize::MAX)
    }

    fn publish_inner(&mut self, fail_after: usize) -> Result<Vec<PathBuf>> {
        // Held throughout, so an interrupt's `remove_staged` waits for a publish in progress.
        let mut live = live();
        for s in &self.staged {
            if !s.is_dir && !s.staged.is_file() {
                return Err(IoError::format(
                    &s.target,
                    "the command did not write this output",
                ));
            }
            check_conflicts(&s.staged, &s.target, s.is_dir)?;
        }
        let mut done = Vec::new();
        let mut renames = 0usize;
        let result = self.staged.iter().try_for_each(|s| {
            move_into_place(&s.staged, &s.target, &mut done, &mut renames, fail_after)
        });
        match result {
            Ok(()) => {
                for d in done {
                    if let Done::Replaced { backup, .. } = d {
                        remove(&backup);
                    }
                }
                let targets = self.staged.iter().map(|s| s.target.clone()).collect();
                for s in std::mem::take(&mut self.staged) {
                    // A staged directory merged into an existing one is empty now.
                    remove(&s.staged);
                    live.retain(|p| p != &s.staged);
                }
                Ok(targets)
            }
            Err(e) => {
                for d in done.into_iter().rev() {
                    match d {
                        Done::Created(p) => remove(&p),
                        Done::Replaced { target, backup } => {
                            let _ = fs::rename(&backup, &target);
                        }
                    }
                }
                Err(e)
            }
        }
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        let mut live = live();
        for s in &self.staged {
            remove(&s.staged);
            live.retain(|p| p != &s.staged);
        }
    }
}

/// **Errors** if publishing `staged` at `target` would put a file where a directory is or the
/// reverse, at any depth.
fn check_conflicts(staged: &Path, target: &Path, is_dir: bool) -> Result<()> {
    let meta = match fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(IoError::io(target, e)),
    };
    match (is_dir, meta.is_dir()) {
        (false, false) => Ok(()),
        (false, true) => Err(IoError::format(
            target,
            "is a directory where the output file goes; nothing was written",
        )),
        (true, false) => Err(IoError::format(
            target,
            "is a file where the output directory goes; nothing was written",
        )),
        (true, true) => {
            let entries = fs::read_dir(staged).map_err(|e| IoError::io(staged, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| IoError::io(staged, e))?;
                let is_dir = entry
                    .file_type()
                    .map_err(|e| IoError::io(staged, e))?
                    .is_dir();
                check_conflicts(&entry.path(), &target.join(entry.file_name()), is_dir)?;
            }
            Ok(())
        }
    }
}

fn move_into_place(
    staged: &Path,
    target: &Path,
    done: &mut Vec<Done>,
    renames: &mut usize,
    fail_after: usize,
) -> Result<()> {
    let mut rename = |from: &Path, to: &Path| -> Result<()> {
        if *renames >= fail_after {
            return Err(IoError::io(to, io::Error::other("injected failure")));
        }
        *renames += 1;
        fs::rename(from, to).map_err(|e| IoError::io(to, e))
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            rename(staged, target)?;
            done.push(Done::Created(target.to_path_buf()));
            Ok(())
        }
        Err(e) => Err(IoError::io(target, e)),
        Ok(meta) if meta.is_dir() && staged.is_dir() => {
            let entries = fs::read_dir(staged).map_err(|e| IoError::io(staged, e))?;
            let mut names: Vec<_> = entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .map_err(|e| IoError::io(staged, e))?;
            names.sort();
            for name in names {
                move_into_place(
                    &staged.join(&name),
                    &target.join(&name),
                    done,
                    renames,
                    fail_after,
                )?;
            }
            Ok(())
        }
        Ok(_) => {
            let backup = sibling(target, "old")?;
            rename(target, &backup)?;
            if let Err(e) = rename(staged, target) {
                let _ = fs::rename(&backup, target);
                return Err(e);
            }
            done.push(Done::Replaced {
                target: target.to_path_buf(),
                backup,
            });
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vidlrp-publish-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(d: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![d.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(d).unwrap().display().to_string();
                if e.path().is_dir() {
                    out.push((rel, "/".into()));
                    stack.push(e.path());
                } else {
                    out.push((rel, fs::read_to_string(e.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// Stages a file `r.npy`, a new directory `pics/` and a directory `out/` merged into an
    /// existing one with a file to replace and one to keep.
    fn scenario(d: &Path) -> Outputs {
        fs::create_dir_all(d.join("out/sub")).unwrap();
        fs::write(d.join("out/keep.txt"), "old keep").unwrap();
        fs::write(d.join("out/sub/x.txt"), "old x").unwrap();
        fs::write(d.join("r.npy"), "old r").unwrap();
        let mut o = Outputs::new();
        fs::write(o.file(&d.join("r.npy")).unwrap(), "new r").unwrap();
        let pics = o.dir(&d.join("pics")).unwrap();
        fs::write(pics.join("a.png"), "a").unwrap();
        let out = o.dir(&d.join("out")).unwrap();
        fs::create_dir(out.join("sub")).unwrap();
        fs::write(out.join("sub/x.txt"), "new x").unwrap();
        fs::write(out.join("summary.json"), "{}").unwrap();
        o
    }

    #[test]
    fn publishing_moves_everything_into_place() {
        let d = tmpdir("ok");
        scenario(&d).publish().unwrap();
        let l = listing(&d);
        let want: Vec<(String, String)> = [
            ("out", "/"),
            ("out/keep.txt", "old keep"),
            ("out/sub", "/"),
            ("out/sub/x.txt", "new x"),
            ("out/summary.json", "{}"),
            ("pics", "/"),
            ("pics/a.png", "a"),
            ("r.npy", "new r"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
        .collect();
        assert_eq!(l, want);
    }

    #[test]
    fn dropping_or_failing_at_any_rename_leaves_the_targets_as_they_were() {
        let d = tmpdir("before");
        drop(scenario(&d));
        let before = listing(&d);
        assert_eq!(before.len(), 5, "{before:?}");
        // There are 6 renames (r.npy: 2, pics: 1, sub/x.txt: 2, summary.json: 1).
        for k in 0..6 {
            let d = tmpdir(&format!("fail{k}"));
            let mut o = scenario(&d);
            assert!(o.publish_inner(k).is_err(), "k = {k}");
            drop(o);
            assert_eq!(listing(&d), before, "failure after {k} renames");
        }
    }

    #[test]
    fn a_conflicting_target_fails_before_any_rename() {
        let d = tmpdir("conflict");
        fs::create_dir(d.join("r.npy")).unwrap();
        let mut o = Outputs::new();
        fs::write(o.file(&d.join("r.npy")).unwrap(), "r").unwrap();
        let pics = o.dir(&d.join("pics")).unwrap();
        fs::write(pics.join("a.png"), "a").unwrap();
        let e = o.publish().unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert_eq!(listing(&d), vec![("r.npy".to_string(), "/".to_string())]);
        let mut o = Outputs::new();
        o.file(&d.join("never-written.txt")).unwrap();
        assert!(o.publish().is_err());
        assert!(Outputs::new().file(&d.join("missing/x.txt")).is_err());
    }
}
