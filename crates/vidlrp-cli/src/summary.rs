//! The short human summary of a command's JSON summary: what a terminal shows without
//! `--json`.

use std::fmt::Write;

use serde_json::Value;

/// What a command hands back to `main` when it succeeds: its JSON summary (printed with
/// `--json`) and the short text a person reads on a terminal (printed without it). Commands
/// print nothing else on stdout, so a caller that runs them as functions (`reproduce`) gets
/// their results without their output.
pub struct Finished {
    /// The whole summary.
    pub json: Value,
    /// The human summary.
    pub text: String,
}

impl Finished {
    /// A summary whose human text is [`human`] of it.
    pub fn summary(json: Value) -> Self {
        let text = human(&json);
        Self { json, text }
    }

    /// A summary with its own human text.
    pub fn with_text(json: Value, text: String) -> Self {
        Self { json, text }
    }
}

/// At most this many items of a list are shown.
const LIST: usize = 8;

/// One value on one line, or `None` if it is too big to show (a table, a long list).
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(_) | Value::Bool(_) | Value::Number(_) => scalar(v),
        Value::Array(items) if items.is_empty() => Some("none".into()),
        Value::Array(items) => {
            let shown: Option<Vec<String>> = items.iter().take(LIST).map(scalar).collect();
            let shown = shown?.join(", ");
            Some(if items.len() > LIST {
                format!("{shown}, ... ({} in all)", items.len())
            } else {
                shown
            })
        }
        Value::Object(m) if m.values().all(|v| scalar(v).is_some()) && m.len() <= LIST => Some(
            m.iter()
                .filter_map(|(k, v)| Some(format!("{k} {}", scalar(v)?)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Value::Object(m) if m.values().all(Value::is_object) && !m.is_empty() => {
            Some(m.keys().cloned().collect::<Vec<_>>().join(", "))
        }
        Value::Object(_) => None,
    }
}

/// A number (at most 4 significant decimals for fractions), a string or a boolean.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.is_f64() => n.as_f64().map(|f| {
            if f.fract() != 0.0 && f.abs() < 1e6 {
                format!("{f:.4}")
            } else {
                n.to_string()
            }
        }),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `key: value` lines for the summary's fields that fit on a line; a closing line says what
/// was left out and where the full summary is (`--json`).
///
/// ```text
/// out: steps/
/// summary: steps/summary.json
/// (2 more fields: --json prints the whole summary)
/// ```
pub fn human(summary: &Value) -> String {
    let mut text = String::new();
    let Value::Object(m) = summary else {
        return format!("{summary}\n");
    };
    let mut left = 0;
    for (k, v) in m {
        match inline(v) {
            Some(line) => {
                let _ = writeln!(text, "{k}: {line}");
            }
            None if v.is_null() => {}
            None => left += 1,
        }
    }
    if left > 0 {
        let _ = writeln!(
            text,
            "({left} more field{}: --json prints the whole summary)",
            if left == 1 { "" } else { "s" }
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::human;
    use serde_json::json;

    #[test]
    fn scalars_and_short_lists_are_shown_and_tables_are_counted() {
        let j = json!({
            "out": "steps/",
            "videos": 12,
            "share": 0.123456,
            "steps": [1, 2, 4],
            "methods": {"dtd": {"x": 1}, "sa": {"x": 2}},
            "model": {"classes": 4, "about": "seeded"},
            "records": [{"a": 1}],
            "missing": null,
        });
        let h = human(&j);
        for line in [
            "out: steps/",
            "videos: 12",
            "share: 0.1235",
            "steps: 1, 2, 4",
            "methods: dtd, sa",
            "model: about seeded, classes 4",
            "(1 more field: --json prints the whole summary)",
        ] {
            assert!(h.contains(line), "{line:?} missing from\n{h}");
        }
        assert!(!h.contains("missing"), "{h}");
    }

    #[test]
    fn long_lists_are_cut() {
        let h = human(&json!({"epochs": (0..20).collect::<Vec<_>>()}));
        assert!(h.contains("0, 1, 2, 3, 4, 5, 6, 7, ... (20 in all)"), "{h}");
    }
}
