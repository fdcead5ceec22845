//! Architecture invariants that a machine can check (rust-analyzer's "tidy" tests): which crate
//! may depend on what, workspace hygiene, and that library error texts speak of values, not of
//! command-line flags. ARCHITECTURE.md states each invariant in words.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The normal (not dev, not build) dependencies of a crate.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let m = manifest(&root().join("crates").join(krate).join("Cargo.toml"));
    m.get("dependencies")
        .and_then(toml::Value::as_table)
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

fn library_crates() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "vidlrp-cli")
        .collect();
    v.sort();
    v
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn core_depends_on_no_ndarray_cuda_io_or_video_crate_by_default() {
    let m = manifest(&root().join("crates/vidlrp-core/Cargo.toml"));
    let deps = m["dependencies"].as_table().unwrap();
    for (name, spec) in deps {
        let optional = spec.get("optional").and_then(toml::Value::as_bool) == Some(true);
        assert!(
            ["serde", "thiserror"].contains(&name.as_str()) || (name == "ndarray" && optional),
            "vidlrp-core depends on {name}"
        );
    }
}

#[test]
fn dependencies_point_the_right_way() {
    let forbidden: &[(&str, &[&str])] = &[
        (
            "vidlrp-stats",
            &["vidlrp-core", "vidlrp-io", "vidlrp-c3d", "vidlrp-snippet"],
        ),
        ("vidlrp-snippet", &["vidlrp-c3d", "vidlrp-io", "vidlrp-cpu"]),
        ("vidlrp-viz", &["vidlrp-c3d", "vidlrp-cpu", "vidlrp-stats"]),
        (
            "vidlrp-c3d",
            &["vidlrp-snippet", "vidlrp-cpu", "vidlrp-viz"],
        ),
        ("vidlrp-cpu", &["vidlrp-c3d", "vidlrp-io"]),
        (
            "vidlrp-reference",
            &["vidlrp-cpu", "vidlrp-c3d", "vidlrp-io"],
        ),
        ("vidlrp-cuda", &["vidlrp-cpu", "vidlrp-c3d", "vidlrp-io"]),
    ];
    for (krate, never) in forbidden {
        let deps = dependencies(krate);
        for n in *never {
            assert!(!deps.contains(*n), "{krate} must not depend on {n}");
        }
    }
    for krate in library_crates() {
        let deps = dependencies(&krate);
        if krate != "vidlrp-snippet" {
            assert!(
                !deps.contains("video-rs"),
                "only vidlrp-snippet knows FFmpeg; {krate} too"
            );
        }
        if krate != "vidlrp-cuda" {
            assert!(
                !deps.contains("cudarc"),
                "only vidlrp-cuda knows CUDA; {krate} too"
            );
        }
        assert!(!deps.contains("vidlrp-cli"), "{krate} depends on the CLI");
        assert!(
            !deps.contains("clap"),
            "{krate}: argument parsing belongs to the CLI"
        );
    }
}

#[test]
fn backends_implement_ops_never_rules() {
    for krate in ["vidlrp-cpu", "vidlrp-reference", "vidlrp-cuda"] {
        let mut files = Vec::new();
        rust_files(&root().join("crates").join(krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                !text.contains("Rule::"),
                "{} names a rule: rules live in vidlrp-core",
                f.display()
            );
        }
    }
}

#[test]
fn library_messages_name_no_command_line_flags() {
    for krate in library_crates() {
        let mut files = Vec::new();
        rust_files(&root().join("crates").join(&krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                // A flag inside a string literal: `"... --name ..."`.
                let in_string = code.split('"').skip(1).step_by(2);
                for s in in_string {
                    let flag = s.split_whitespace().find(|w| {
                        w.starts_with("--") && w[2..].starts_with(|c: char| c.is_ascii_lowercase())
                    });
                    assert!(
                        flag.is_none(),
                        "{}:{}: a library message names the flag {:?}; say what the value is instead",
                        f.display(),
                        i + 1,
                        flag
                    );
                }
            }
        }
    }
}

#[test]
fn every_crate_is_a_member_once_with_docs_lints_and_release_metadata() {
    let ws = manifest(&root().join("Cargo.toml"));
    let members: Vec<&str> = ws["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let unique: BTreeSet<&&str> = members.iter().collect();
    assert_eq!(
        unique.len(),
        members.len(),
        "a workspace member is listed twice"
    );
    for krate in library_crates()
        .into_iter()
        .chain(["vidlrp-cli".to_string()])
    {
        let path = format!("crates/{krate}");
        assert!(
            members.contains(&path.as_str()),
            "{krate} is not a workspace member"
        );
        let dir = root().join(&path);
        let m = manifest(&dir.join("Cargo.toml"));
        let package = m["package"].as_table().unwrap();
        for key in ["description", "license", "repository", "readme"] {
            assert!(package.contains_key(key), "{krate}: [package] lacks {key}");
        }
        assert_eq!(
            m.get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(toml::Value::as_bool),
            Some(true),
            "{krate}: [lints] workspace = true"
        );
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
        assert!(
            readme.len() > 200,
            "{krate}: README.md missing or too short"
        );
    }
    let repo = ws["workspace"]["package"]["repository"].as_str().unwrap();
    assert!(
        !repo.contains("invalid") && !repo.contains("example"),
        "placeholder URL {repo}"
    );
}

#[test]
fn the_architecture_document_names_every_crate() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for krate in library_crates()
        .into_iter()
        .chain(["vidlrp-cli".to_string()])
    {
        assert!(
            doc.contains(&format!("crates/{krate}")),
            "ARCHITECTURE.md lacks crates/{krate}"
        );
    }
}
