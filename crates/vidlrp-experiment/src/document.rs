//! A report as a document: one list of blocks, rendered to Markdown ([`markdown`]) and to a
//! standalone HTML page with its figures inline ([`html`]).
//!
//! ```
//! use vidlrp_experiment::document::{markdown, Block};
//! let doc = vec![
//!     Block::Heading(1, "Claims".into()),
//!     Block::Table(vec!["#".into(), "verdict".into()], vec![vec!["C1".into(), "holds".into()]]),
//! ];
//! assert_eq!(markdown(&doc), "# Claims\n\n| # | verdict |\n|---|---|\n| C1 | holds |\n\n");
//! ```

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;

/// A block of a report.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1-6.
    Heading(u8, String),
    /// A paragraph (`*emphasis*`, `**strong**` and `` `code` `` inline).
    Para(String),
    /// A table: the header, then the rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A figure: a PNG's path relative to the report's directory, and its caption.
    Figure(String, String),
    /// Preformatted text.
    Code(String),
}

/// The document as Markdown.
pub fn markdown(doc: &[Block]) -> String {
    let mut s = String::new();
    for b in doc {
        match b {
            Block::Heading(l, t) => {
                let _ = writeln!(s, "{} {t}\n", "#".repeat(*l as usize));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "{t}\n");
            }
            Block::Table(head, rows) => {
                let cell = |c: &String| c.replace('|', "\\|");
                let _ = writeln!(
                    s,
                    "| {} |",
                    head.iter().map(cell).collect::<Vec<_>>().join(" | ")
                );
                let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
                for r in rows {
                    let _ = writeln!(
                        s,
                        "| {} |",
                        r.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    );
                }
                s.push('\n');
            }
            Block::Figure(path, caption) => {
                let _ = writeln!(s, "![{caption}]({path})\n\n*{caption}*\n");
            }
            Block::Code(t) => {
                let _ = writeln!(s, "```sh\n{t}\n```\n");
            }
        }
    }
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Inline Markdown of our own text: `code`, **bold**, *italic*.
fn inline(t: &str) -> String {
    let mut rest = escape(t);
    for (mark, open, close) in [
        ("`", "<code>", "</code>"),
        ("**", "<b>", "</b>"),
        ("*", "<i>", "</i>"),
    ] {
        let parts: Vec<&str> = rest.split(mark).collect();
        if parts.len() % 2 == 1 {
            let mut joined = String::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    joined.push_str(if i % 2 == 1 { open } else { close });
                }
                joined.push_str(p);
            }
            rest = joined;
        }
    }
    rest
}

/// The document as one HTML page; figures are read from `dir` and embedded (a figure that
/// cannot be read is linked by its path instead).
pub fn html(doc: &[Block], dir: &Path) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <title>vidlrp report</title>\n<style>body{font-family:sans-serif;max-width:60em;\
         margin:2em auto;line-height:1.45}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}\
         img{max-width:100%}figcaption{font-style:italic}pre{background:#f4f4f4;padding:.5em;\
         overflow-x:auto}</style></head><body>\n",
    );
    for b in doc {
        match b {
            Block::Heading(l, t) => {
                let _ = writeln!(s, "<h{l}>{}</h{l}>", inline(t));
            }
            Block::Para(t) => {
                let _ = writeln!(s, "<p>{}</p>", inline(t));
            }
            Block::Table(head, rows) => {
                s.push_str("<table><tr>");
                for h in head {
                    let _ = write!(s, "<th>{}</th>", inline(h));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        let _ = write!(s, "<td>{}</td>", inline(c));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Figure(path, caption) => {
                // Figures are embedded, so the page stands alone.
                let src = match std::fs::read(dir.join(path)) {
                    Ok(bytes) => format!(
                        "data:image/png;base64,{}",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    ),
                    Err(_) => escape(path),
                };
                let _ = writeln!(
                    s,
                    "<figure><img src=\"{src}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
                    escape(caption),
                    inline(caption)
                );
            }
            Block::Code(t) => {
                let _ = writeln!(s, "<pre><code>{}</code></pre>", escape(t));
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}
