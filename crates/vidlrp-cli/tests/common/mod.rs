//! Helpers shared by the CLI test files (each includes this module; not every file uses every
//! helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `vidlrp` binary.
pub fn vidlrp(args: &[&str]) -> Output {
    vidlrp_env(args, &[])
}

/// Runs the built `vidlrp` binary with extra environment variables.
pub fn vidlrp_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidlrp"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run vidlrp")
}

/// `o`, after asserting that the run succeeded (its stderr in the message otherwise).
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "vidlrp failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A fresh, empty directory for one test, named after the test file and `tag`.
pub fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vidlrp-{}-{tag}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small seeded C3D-shaped model (widths 4, fc 16, 6 classes) written by `vidlrp init`.
pub fn small_model(dir: &Path) -> PathBuf {
    let w = dir.join("small.safetensors");
    ok(vidlrp(&[
        "init",
        "--widths",
        "4,4,4,4,4,4,4,4",
        "--fc",
        "16,16",
        "--classes",
        "6",
        "--seed",
        "3",
        "--out",
        s(&w),
    ]));
    w
}
