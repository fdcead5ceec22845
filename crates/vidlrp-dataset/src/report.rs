//! [`summarize`]: the summary, tables and figures of a run's [`Records`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use vidlrp_stats::Effects;
use vidlrp_viz::plots::{share_figure, xy_figure, Series, SharePanel};

use crate::{AnalysisMethod, Condition, DatasetError, Records, Result, RunConfig, Shard, Status};

/// The format of `summary.json` this build writes and reads.
pub const SUMMARY_FORMAT: u32 = 1;

/// The summary of a data-set run, as written to `summary.json` by [`summarize`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`SUMMARY_FORMAT`].
    pub format: u32,
    /// The command that ran (`profile`, `sweep-steps`, `sweep-offsets`).
    pub command: String,
    /// The run's options.
    pub config: RunConfig,
    /// Videos in the manifest.
    pub manifest_items: usize,
    /// The shards the summary covers.
    pub shards: Vec<Shard>,
    /// One entry per condition, in run order.
    pub conditions: Vec<ConditionSummary>,
    /// What a reader should know: conditions without effects, skipped and failed videos.
    pub warnings: Vec<String>,
}

/// One condition's results over the run's videos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionSummary {
    /// The condition's key (`dtd step=2`).
    pub key: String,
    /// The explanation method.
    pub method: AnalysisMethod,
    /// First source frame of the snippet.
    pub offset: usize,
    /// Source frames between snippet frames.
    pub step: usize,
    /// Videos analysed.
    pub n: usize,
    /// Border and lookahead strengths with bootstrap intervals (`None` where too few videos).
    pub effects: Option<Effects>,
    /// Top-1 accuracy over the labelled videos (`None` without labels).
    pub top1: Option<f64>,
    /// Top-5 accuracy over the labelled videos.
    pub top5: Option<f64>,
    /// Top-1 hits and labelled videos.
    pub hits_top1: (usize, usize),
    /// Top-5 hits and labelled videos.
    pub hits_top5: (usize, usize),
    /// Videos too short for the snippet.
    pub skipped: Vec<Missed>,
    /// Videos that could not be read or explained.
    pub failed: Vec<Missed>,
}

/// A video that gave no observation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missed {
    /// Its manifest index.
    pub item: usize,
    /// Its path as in the manifest.
    pub path: String,
    /// Why.
    pub reason: Option<String>,
}

impl vidlrp_io::Versioned for Summary {
    const FORMAT: u32 = SUMMARY_FORMAT;
    const WHAT: &'static str = "data-set summary";
}

impl Summary {
    /// Reads `dir/summary.json`.
    ///
    /// **Errors** if it is missing, of another format, or not a summary.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(vidlrp_io::read_versioned(&dir.join("summary.json"))?)
    }

    /// The condition with this key.
    pub fn condition(&self, key: &str) -> Option<&ConditionSummary> {
        self.conditions.iter().find(|c| c.key == key)
    }

    /// The conditions of one method, in run order.
    pub fn of_method(&self, method: AnalysisMethod) -> impl Iterator<Item = &ConditionSummary> {
        self.conditions.iter().filter(move |c| c.method == method)
    }
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<()> {
    vidlrp_io::atomic_write(&dir.join(name), |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    Ok(())
}

/// A CSV field, quoted when it holds a comma, quote or newline.
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `records.json`, `summary.json`, `conditions.csv` (one row per condition: n, border
/// and lookahead strengths with bootstrap intervals, top-1/top-5 accuracy, skipped and failed
/// counts), `shares.csv` (every share vector) and the command's figures (PNG and SVG) into
/// `dir`, which must exist. Returns the summary.
///
/// **Errors** if the records are inconsistent, no video could be analysed under any
/// condition, or a file or figure cannot be written.
pub fn summarize(dir: &Path, rec: &Records) -> Result<Summary> {
    rec.check()?;
    let (bootstrap, seed) = (rec.config.bootstrap, rec.config.seed);
    let mut conditions = Vec::new();
    let mut warnings = Vec::new();
    let mut effects = BTreeMap::new();
    for c in &rec.conditions {
        let acc = &rec.accumulators[&c.key];
        let listed = |status: Status| -> Vec<Missed> {
            rec.outcomes
                .iter()
                .filter(|o| o.condition == c.key && o.status == status)
                .map(|o| Missed {
                    item: o.item,
                    path: o.path.clone(),
                    reason: o.reason.clone(),
                })
                .collect()
        };
        let (skipped, failed) = (listed(Status::Skipped), listed(Status::Failed));
        let e = match acc.effects(bootstrap, seed) {
            Ok(e) => Some(e),
            Err(err) => {
                warnings.push(format!("{}: {err}", c.key));
                None
            }
        };
        if !skipped.is_empty() || !failed.is_empty() {
            warnings.push(format!(
                "{}: {} video(s) skipped, {} failed",
                c.key,
                skipped.len(),
                failed.len()
            ));
        }
        if let Some(e) = &e {
            effects.insert(c.key.clone(), e.clone());
        }
        conditions.push(ConditionSummary {
            key: c.key.clone(),
            method: c.method,
            offset: c.offset,
            step: c.step,
            n: acc.count(),
            effects: e,
            top1: acc.accuracy(1),
            top5: acc.accuracy(5),
            hits_top1: acc.hits(1),
            hits_top5: acc.hits(5),
            skipped,
            failed,
        });
    }
    if effects.is_empty() {
        return Err(DatasetError::Empty(format!(
            "no video could be analysed (every one was skipped or failed): {}",
            warnings.join("; ")
        )));
    }
    let summary = Summary {
        format: SUMMARY_FORMAT,
        command: rec.command.clone(),
        config: rec.config.clone(),
        manifest_items: rec.manifest_items,
        shards: rec.shards.clone(),
        conditions,
        warnings,
    };
    rec.write(&dir.join("records.json"))?;
    vidlrp_io::write_json(&dir.join("summary.json"), &summary)?;
    write_text(dir, "conditions.csv", &conditions_table(&summary))?;
    write_text(dir, "shares.csv", &shares_table(rec, &effects))?;
    figures(dir, rec, &effects)?;
    Ok(summary)
}

fn conditions_table(summary: &Summary) -> String {
    let mut table = String::from("condition,method,offset,step,n,border,border_lo,border_hi,lookahead,lookahead_lo,lookahead_hi,top1,top5,skipped,failed\n");
    for c in &summary.conditions {
        let e = c.effects.as_ref();
        let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        let row = [
            c.key.clone(),
            c.method.to_string(),
            c.offset.to_string(),
            c.step.to_string(),
            c.n.to_string(),
            f(e.map(|e| e.border)),
            f(e.and_then(|e| e.border_ci).map(|i| i.lo)),
            f(e.and_then(|e| e.border_ci).map(|i| i.hi)),
            f(e.map(|e| e.lookahead)),
            f(e.and_then(|e| e.lookahead_ci).map(|i| i.lo)),
            f(e.and_then(|e| e.lookahead_ci).map(|i| i.hi)),
            f(c.top1),
            f(c.top5),
            c.skipped.len().to_string(),
            c.failed.len().to_string(),
        ];
        table += &row.join(",");
        table.push('\n');
    }
    table
}

fn shares_table(rec: &Records, effects: &BTreeMap<String, Effects>) -> String {
    let t = effects.values().next().map_or(0, |e| e.mean.len());
    let columns: Vec<String> = (0..t).map(|i| format!("r{i}")).collect();
    let mut shares = format!("condition,item,path,{}\n", columns.join(","));
    let paths: BTreeMap<usize, &str> = rec
        .outcomes
        .iter()
        .map(|o| (o.item, o.path.as_str()))
        .collect();
    for c in &rec.conditions {
        for o in rec.accumulators[&c.key].observations() {
            let p = paths.get(&o.item).copied().unwrap_or("");
            let vals: Vec<String> = o.shares.iter().map(ToString::to_string).collect();
            shares += &format!("{},{},{},{}\n", c.key, o.item, csv_field(p), vals.join(","));
        }
    }
    shares
}

/// One series per method of the points `(x(c), y(c))` over the conditions that have both.
fn per_method(rec: &Records, point: impl Fn(&Condition) -> Option<(f64, f64)>) -> Vec<Series> {
    let mut by_method: BTreeMap<AnalysisMethod, Vec<(f64, f64)>> = BTreeMap::new();
    for c in &rec.conditions {
        if let Some(p) = point(c) {
            by_method.entry(c.method).or_default().push(p);
        }
    }
    by_method
        .into_iter()
        .map(|(m, points)| Series {
            label: m.name().to_uppercase(),
            points,
            intervals: Vec::new(),
        })
        .collect()
}

fn figures(dir: &Path, rec: &Records, effects: &BTreeMap<String, Effects>) -> Result<()> {
    match rec.command.as_str() {
        "profile" => {
            let panels: Vec<SharePanel> = rec
                .conditions
                .iter()
                .filter_map(|c| {
                    let e = effects.get(&c.key)?;
                    Some(SharePanel {
                        tau: vidlrp_stats::tau(e.mean.len()),
                        title: format!(
                            "{} (n={}): a={:.4}, b'={:.4}",
                            c.method.name().to_uppercase(),
                            e.n,
                            e.border,
                            e.lookahead
                        ),
                        samples: rec.accumulators[&c.key]
                            .observations()
                            .iter()
                            .map(|o| o.shares.clone())
                            .collect(),
                        mean: e.mean.clone(),
                        quadratic: e.quadratic,
                        linear: e.linear,
                    })
                })
                .collect();
            share_figure(&dir.join("fig2_shares"), &panels)?;
        }
        "sweep-steps" => {
            let border = per_method(rec, |c| {
                effects.get(&c.key).map(|e| (c.step as f64, e.border))
            });
            xy_figure(
                &dir.join("fig3_border_vs_step"),
                "Border strength against step size",
                "step size s",
                "border strength a",
                &border,
                true,
            )?;
            let accuracy = per_method(rec, |c| {
                Some((
                    effects.get(&c.key)?.border,
                    rec.accumulators[&c.key].accuracy(5)?,
                ))
            });
            if !accuracy.is_empty() {
                xy_figure(
                    &dir.join("fig5_top5_vs_border"),
                    "Top-5 accuracy against border strength",
                    "border strength a",
                    "top-5 accuracy",
                    &accuracy,
                    false,
                )?;
            }
        }
        "sweep-offsets" => {
            let lookahead = per_method(rec, |c| {
                effects.get(&c.key).map(|e| (c.offset as f64, e.lookahead))
            });
            xy_figure(
                &dir.join("fig4_lookahead_vs_offset"),
                "Lookahead strength against offset",
                "offset (frames)",
                "lookahead strength b'",
                &lookahead,
                false,
            )?;
        }
        _ => {}
    }
    Ok(())
}
