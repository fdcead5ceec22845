//! What a test needs from the machine, and loud skips where it is missing.
//!
//! A test that cannot run here prints `SKIPPED <test>: <why>` on stderr and returns; with
//! `VIDLRP_REQUIRE_GPU=1` (GPU tests) or `VIDLRP_REQUIRE_SHARED=1` (tests on the shared sample
//! data) the skip is a failure instead, so a machine that should run them cannot pass silently.
//! With `VIDLRP_SKIP_LOG=FILE` each skip is also appended to FILE as one line `test<TAB>why`
//! (CI prints and counts them at the end: libtest hides a passing test's stderr).

use std::path::{Path, PathBuf};

/// Whether the environment variable `name` is set to `1`.
pub fn required(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Skips `test` loudly, or panics if `require` (an environment variable) is set to `1`.
#[track_caller]
pub fn skip(test: &str, why: &str, require: &str) {
    if required(require) {
        panic!("{test} cannot run: {why} ({require}=1 makes this a failure)");
    }
    eprintln!("SKIPPED {test}: {why} (set {require}=1 to make this a failure)");
    log_skip(test, why);
}

/// Appends `test<TAB>why` to the file `VIDLRP_SKIP_LOG` names, if any (one `write` of one
/// line in append mode, so that test processes running at once do not interleave lines).
///
/// For tests that skip for reasons no environment variable can require (a CPU feature, a
/// library version), after they said why on stderr.
pub fn log_skip(test: &str, why: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("VIDLRP_SKIP_LOG") else {
        return;
    };
    let line = format!("{test}\t{}\n", why.replace(['\n', '\t'], " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "could not log the skip of {test} to {}: {e}",
            Path::new(&path).display()
        );
    }
}

/// The shared sample data directory: `$VIDLRP_SHARED`, or `shared/` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("VIDLRP_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    )
}

/// `relative` under [`shared_dir`], or a loud skip of `test` (a failure under
/// `VIDLRP_REQUIRE_SHARED=1`) if it is not there.
#[track_caller]
pub fn shared(test: &str, relative: &str) -> Option<PathBuf> {
    let p = shared_dir().join(relative);
    if p.exists() {
        Some(p)
    } else {
        skip(
            test,
            &format!("{} is not present", p.display()),
            "VIDLRP_REQUIRE_SHARED",
        );
        None
    }
}
