//! Helpers shared by the CLI test files (each includes this module; not every file uses every
//! helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the built `vidlrp` binary with `--json` (after the command's name), so a command's
/// stdout is its one JSON summary.
pub fn vidlrp(args: &[&str]) -> Output {
    vidlrp_env(args, &[])
}

/// [`vidlrp`] with extra environment variables.
pub fn vidlrp_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let (command, rest) = args.split_first().expect("a command");
    Command::new(env!("CARGO_BIN_EXE_vidlrp"))
        .arg(command)
        .arg("--json")
        .args(rest)
        .envs(env.iter().copied())
        .output()
        .expect("run vidlrp")
}

/// Runs the built `vidlrp` binary as a person does, without `--json`.
pub fn vidlrp_human(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidlrp"))
        .args(args)
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

/// The one JSON object a `--json` run printed, after asserting that it succeeded.
pub fn stdout_json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "vidlrp failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("one JSON object on stdout")
}

/// A JSON file a command wrote (`summary.json`, `records.json`).
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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

// Caffe protobuf, encoded by hand from C3D's caffe.proto field numbers.

/// Protobuf base-128 varint.
pub fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A length-delimited protobuf field.
pub fn field_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// A varint protobuf field.
pub fn field_varint(field: u64, v: u64, out: &mut Vec<u8>) {
    varint(field << 3, out);
    varint(v, out);
}

/// A C3D v1.0 blob: dims as num, channels, length, height, width; packed data in field 6.
pub fn blob(dims: [u64; 5], data: &[f32]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        field_varint(i as u64 + 1, *d, &mut b);
    }
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    field_bytes(6, &raw, &mut b);
    b
}

/// Every file of `dir` (flat) with its bytes, sorted by name.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push((
            p.file_name().unwrap().to_string_lossy().into_owned(),
            std::fs::read(&p).unwrap(),
        ));
    }
    out.sort();
    out
}

/// Runs `vidlrp args` and sends it `SIG{signal}` once its
/// journal holds two finished records (header + 2 lines); checks that it was interrupted and
/// published nothing at `out`. Returns the records it had journaled.
pub fn interrupt_after_two(args: &[String], journal: &Path, out: &Path, signal: &str) -> usize {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vidlrp"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::fs::read_to_string(journal).map_or(0, |t| t.lines().count()) < 3 {
        assert!(start.elapsed().as_secs() < 120, "no progress was journaled");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        !child.wait().unwrap().success(),
        "SIG{signal}: the run was not interrupted"
    );
    assert!(
        !out.exists(),
        "SIG{signal}: an interrupted run published outputs"
    );
    std::fs::read_to_string(journal).unwrap().lines().count() - 1
}
