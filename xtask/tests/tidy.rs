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

/// Which workspace crates each crate may depend on (normal dependencies). A crate not listed,
/// or a dependency not allowed, fails: a new edge in the graph is a decision made here, in
/// review, not by accident. ARCHITECTURE.md's code map describes each edge.
const ALLOWED: &[(&str, &[&str])] = &[
    ("vidlrp-alloc", &[]),
    ("vidlrp-core", &[]),
    ("vidlrp-rng", &[]),
    ("vidlrp-cpu", &["vidlrp-core"]),
    ("vidlrp-cuda", &["vidlrp-core"]),
    ("vidlrp-reference", &["vidlrp-core"]),
    ("vidlrp-io", &["vidlrp-core"]),
    ("vidlrp-snippet", &["vidlrp-core"]),
    ("vidlrp-stats", &["vidlrp-rng"]),
    ("vidlrp-checkpoint", &["vidlrp-core", "vidlrp-io"]),
    (
        "vidlrp-viz",
        &["vidlrp-core", "vidlrp-io", "vidlrp-snippet"],
    ),
    (
        "vidlrp-c3d",
        &[
            "vidlrp-checkpoint",
            "vidlrp-core",
            "vidlrp-io",
            "vidlrp-rng",
        ],
    ),
    (
        "vidlrp-video-resnet",
        &["vidlrp-core", "vidlrp-io", "vidlrp-rng"],
    ),
    (
        "vidlrp-model",
        &[
            "vidlrp-c3d",
            "vidlrp-checkpoint",
            "vidlrp-core",
            "vidlrp-io",
            "vidlrp-video-resnet",
        ],
    ),
    (
        "vidlrp-conformance",
        &["vidlrp-c3d", "vidlrp-core", "vidlrp-io", "vidlrp-rng"],
    ),
    (
        "vidlrp-evaluate",
        &["vidlrp-core", "vidlrp-rng", "vidlrp-stats"],
    ),
    (
        "vidlrp-synth",
        &["vidlrp-core", "vidlrp-io", "vidlrp-rng", "vidlrp-snippet"],
    ),
    (
        "vidlrp-dataset",
        &[
            "vidlrp-c3d",
            "vidlrp-core",
            "vidlrp-evaluate",
            "vidlrp-io",
            "vidlrp-model",
            "vidlrp-snippet",
            "vidlrp-stats",
            "vidlrp-viz",
        ],
    ),
    (
        "vidlrp-experiment",
        &[
            "vidlrp-c3d",
            "vidlrp-core",
            "vidlrp-dataset",
            "vidlrp-evaluate",
            "vidlrp-io",
            "vidlrp-rng",
            "vidlrp-snippet",
            "vidlrp-stats",
            "vidlrp-synth",
            "vidlrp-train",
            "vidlrp-viz",
        ],
    ),
    (
        "vidlrp-train",
        &[
            "vidlrp-c3d",
            "vidlrp-core",
            "vidlrp-io",
            "vidlrp-rng",
            "vidlrp-snippet",
            "vidlrp-stats",
        ],
    ),
    (
        "vidlrp-py",
        &[
            "vidlrp-alloc",
            "vidlrp-core",
            "vidlrp-cpu",
            "vidlrp-cuda",
            "vidlrp-model",
            "vidlrp-reference",
            "vidlrp-snippet",
            "vidlrp-stats",
        ],
    ),
];

#[test]
fn dependencies_point_the_right_way() {
    for krate in library_crates() {
        let allowed = ALLOWED
            .iter()
            .find(|(k, _)| *k == krate)
            .unwrap_or_else(|| panic!("{krate} is not in tidy's ALLOWED list of dependencies"))
            .1;
        for dep in dependencies(&krate) {
            if dep.starts_with("vidlrp-") {
                assert!(
                    allowed.contains(&dep.as_str()),
                    "{krate} may not depend on {dep} (tidy's ALLOWED list)"
                );
            }
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

/// The line ranges `(first, last, name)` (1-based) of the functions in `text` that are not
/// inside a `#[cfg(test)]` module, found by rustfmt's layout: a function ends at the first line
/// that is its indentation followed by `}`.
fn functions(text: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "#[cfg(test)]" {
            // Skip the test module (or item) that follows, to its closing brace.
            let indent = lines
                .get(i + 1)
                .map_or(0, |l| l.len() - l.trim_start().len());
            let close = format!("{}}}", " ".repeat(indent));
            i += 1;
            while i < lines.len() && lines[i] != close {
                i += 1;
            }
            i += 1;
            continue;
        }
        let code = line.trim_start();
        let after_vis = code
            .strip_prefix("pub(crate) ")
            .or_else(|| code.strip_prefix("pub(super) "))
            .or_else(|| code.strip_prefix("pub "))
            .unwrap_or(code);
        let after_mods = after_vis
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ")
            .trim_start_matches("async ");
        if let Some(rest) = after_mods.strip_prefix("fn ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let mut j = i;
            while j < lines.len() && !lines[j].ends_with('{') && !lines[j].ends_with(';') {
                j += 1;
            }
            if j < lines.len() && lines[j].ends_with('{') && !lines[j].ends_with("{}") {
                let indent = line.len() - code.len();
                let close = format!("{}}}", " ".repeat(indent));
                let mut k = j + 1;
                while k < lines.len() && lines[k] != close {
                    k += 1;
                }
                out.push((i + 1, k + 1, name));
                i = k + 1;
                continue;
            }
            i = j + 1;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn the_function_finder_sees_functions_and_skips_tests() {
    let text = "fn a() {\n    1\n}\n\npub(crate) fn b(\n    x: u8,\n) -> u8 {\n    x\n}\n\
                #[cfg(test)]\nmod tests {\n    fn c() {\n    }\n}\n";
    let found = functions(text);
    assert_eq!(
        found,
        vec![(1, 3, "a".to_string()), (5, 9, "b".to_string())]
    );
}

/// The most lines of one function in a library crate (tests excluded): longer ones do several
/// things, and a reader should see each as a named step.
const MAX_FUNCTION_LINES: usize = 150;

#[test]
fn no_library_function_is_over_150_lines() {
    for krate in library_crates() {
        let mut files = Vec::new();
        rust_files(&root().join("crates").join(&krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (first, last, name) in functions(&text) {
                let n = last - first + 1;
                assert!(
                    n <= MAX_FUNCTION_LINES,
                    "{}:{first}: fn {name} has {n} lines (at most {MAX_FUNCTION_LINES})",
                    f.display()
                );
            }
        }
    }
}

/// The most lines of one file of the CLI crate: the CLI maps arguments to library calls, and a
/// longer file is a library hiding in the binary.
const MAX_CLI_FILE_LINES: usize = 400;

#[test]
fn cli_files_stay_short() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/vidlrp-cli/src"), &mut files);
    for f in files {
        let n = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(
            n <= MAX_CLI_FILE_LINES,
            "{}: {n} lines (at most {MAX_CLI_FILE_LINES}); move the work into a library",
            f.display()
        );
    }
}

/// Commands hand their summaries back to `main`, which alone prints on stdout; `main.rs`
/// exports nothing, so no command module depends on it (no module cycle through the root) and
/// `reproduce` can run the commands as functions without a global switch.
#[test]
fn only_main_prints_on_stdout_and_main_exports_nothing() {
    let src = root().join("crates/vidlrp-cli/src");
    let main = std::fs::read_to_string(src.join("main.rs")).unwrap();
    for line in main.lines() {
        let line = line.trim_start();
        assert!(
            !(line.starts_with("pub ") || line.starts_with("pub(")),
            "main.rs exports {line:?}: move it into a module of its own"
        );
    }
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for f in files.iter().filter(|f| !f.ends_with("main.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            assert!(
                !(line.contains("println!(") || line.contains("print!("))
                    || line.contains("eprint"),
                "{}:{}: commands return their summary (summary::Finished); main prints it",
                f.display(),
                i + 1
            );
        }
    }
}

#[test]
fn no_public_library_signature_takes_or_returns_untyped_json() {
    for krate in library_crates() {
        let mut files = Vec::new();
        rust_files(&root().join("crates").join(&krate).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let text = match text.find("#[cfg(test)]\nmod ") {
                Some(at) => &text[..at],
                None => &text[..],
            };
            for (at, _) in text.match_indices("pub fn ") {
                let signature = &text[at..];
                let end = signature.find(['{', ';']).unwrap_or(signature.len());
                let signature = &signature[..end];
                assert!(
                    !signature.contains("Value"),
                    "{}: a public function takes or returns untyped JSON: {}",
                    f.display(),
                    signature.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
        }
    }
}

#[test]
fn every_command_is_in_the_cli_readme() {
    let main = std::fs::read_to_string(root().join("crates/vidlrp-cli/src/main.rs")).unwrap();
    let readme = std::fs::read_to_string(root().join("crates/vidlrp-cli/README.md")).unwrap();
    let body = &main[main
        .find("enum Command {")
        .expect("main.rs has enum Command")..];
    let body = &body[..body.find("\n}").unwrap()];
    let mut commands = Vec::new();
    for line in body.lines() {
        let code = line.trim();
        // Variants: `Name(args::Type),` (doc comments and attributes skipped).
        if let Some((name, _)) = code.split_once('(') {
            if name.chars().next().is_some_and(char::is_uppercase) && !code.starts_with("#[") {
                let mut kebab = String::new();
                for (i, c) in name.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        kebab.push('-');
                    }
                    kebab.push(c.to_ascii_lowercase());
                }
                commands.push(kebab);
            }
        }
    }
    assert!(
        commands.len() >= 10,
        "found only {commands:?} in enum Command"
    );
    for c in commands {
        assert!(
            readme.contains(&format!("`{c}`")),
            "crates/vidlrp-cli/README.md does not list the command `{c}`"
        );
    }
}
