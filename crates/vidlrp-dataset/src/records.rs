//! [`Records`]: everything one run measured, checked on reading and merged exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vidlrp_stats::Accumulator;

use crate::{Condition, DatasetError, Result, Shard};

/// The version of the `records.json` layout this crate writes and reads.
pub const RECORDS_FORMAT: u32 = 2;

/// What happened to one video under one condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Explained; its observation is in the condition's accumulator.
    Ok,
    /// Too short for the snippet under the `skip` policy.
    Skipped,
    /// Could not be read or explained.
    Failed,
}

/// One video under one condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Manifest row.
    pub item: usize,
    /// Manifest path.
    pub path: String,
    /// Condition key.
    pub condition: String,
    /// What happened.
    pub status: Status,
    /// Why, if not ok.
    pub reason: Option<String>,
}

/// The options of a run that shards must share to be merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The manifest as given (shards may see it under other paths).
    pub manifest: PathBuf,
    /// SHA-256 of the manifest's bytes.
    pub manifest_sha256: String,
    /// The weights as given.
    pub weights: PathBuf,
    /// SHA-256 of the weight file's bytes.
    pub weights_sha256: String,
    /// Preprocessing preset.
    pub preset: String,
    /// pool5 variant.
    pub pool5: String,
    /// Where the weights come from (`pytorch-port`, `mmaction2`, `caffe`).
    #[serde(default)]
    pub origin: String,
    /// Frames per snippet.
    pub length: usize,
    /// Policy for videos too short for a snippet.
    pub short: String,
    /// Bootstrap resamples.
    pub bootstrap: usize,
    /// Seed of the bootstrap and of the DTD-u weights.
    pub seed: u64,
}

impl RunConfig {
    /// The options without the paths, which may differ between machines.
    pub(crate) fn comparable(&self) -> RunConfig {
        RunConfig {
            manifest: PathBuf::new(),
            weights: PathBuf::new(),
            ..self.clone()
        }
    }
}

/// Everything a data-set run measured; what `merge` combines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Records {
    /// [`RECORDS_FORMAT`] of the writer.
    pub format: u32,
    /// `profile`, `sweep-steps` or `sweep-offsets`.
    pub command: String,
    /// The options that must agree for shards to merge.
    pub config: RunConfig,
    /// The conditions in table order.
    pub conditions: Vec<Condition>,
    /// Items in the whole manifest.
    pub manifest_items: usize,
    /// Shards included, in order.
    pub shards: Vec<Shard>,
    /// Observations per condition key.
    pub accumulators: BTreeMap<String, Accumulator>,
    /// One outcome per item of the shards and condition, in (item, condition) order.
    pub outcomes: Vec<Outcome>,
}

fn bad(message: impl Into<String>) -> DatasetError {
    DatasetError::Records(message.into())
}

impl Records {
    /// Reads `records.json` from a run's output directory and [`Records::check`]s it.
    ///
    /// **Errors** if the file is missing, not valid records, or inconsistent.
    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join("records.json");
        let text = std::fs::read_to_string(&p).map_err(|e| {
            bad(format!(
                "cannot read {} ({e}); is {} a vidlrp output directory?",
                p.display(),
                dir.display()
            ))
        })?;
        let rec: Records = serde_json::from_str(&text)
            .map_err(|e| bad(format!("{}: not valid vidlrp records ({e})", p.display())))?;
        rec.check()
            .map_err(|e| bad(format!("{}: {e}", p.display())))?;
        Ok(rec)
    }

    /// **Errors** unless the records are what a run writes: the format is known; shards share
    /// one `n` and appear once; every condition key is unique and has an accumulator; every
    /// item of the shards has exactly one outcome per condition and no other item has any;
    /// the `ok` outcomes are exactly the accumulated observations, whose share vectors are
    /// finite and `length` long.
    pub fn check(&self) -> Result<()> {
        if self.format != RECORDS_FORMAT {
            return Err(bad(format!(
                "records format {} is not supported (this vidlrp writes {RECORDS_FORMAT}); re-run the command",
                self.format
            )));
        }
        let Some(first) = self.shards.first() else {
            return Err(bad("the records name no shard"));
        };
        let mut seen = BTreeSet::new();
        for s in &self.shards {
            Shard::new(s.index, s.count).map_err(|e| bad(e.to_string()))?;
            if s.count != first.count {
                return Err(bad(format!("shards of different counts: {first} and {s}")));
            }
            if !seen.insert(s.index) {
                return Err(bad(format!("shard {s} appears twice")));
            }
        }
        let keys: BTreeSet<&str> = self.conditions.iter().map(|c| c.key.as_str()).collect();
        if keys.len() != self.conditions.len() {
            return Err(bad("two conditions share a key"));
        }
        let acc_keys: BTreeSet<&str> = self.accumulators.keys().map(String::as_str).collect();
        if keys != acc_keys {
            return Err(bad(format!(
                "the accumulators ({acc_keys:?}) do not match the conditions ({keys:?})"
            )));
        }
        let in_shards =
            |k: usize| k < self.manifest_items && self.shards.iter().any(|s| s.contains(k));
        let mut expected: BTreeSet<(usize, &str)> = BTreeSet::new();
        for k in (0..self.manifest_items).filter(|&k| in_shards(k)) {
            for c in &self.conditions {
                expected.insert((k, c.key.as_str()));
            }
        }
        let mut ok: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        for o in &self.outcomes {
            if !expected.remove(&(o.item, o.condition.as_str())) {
                return Err(bad(format!(
                    "outcome of item {} under {:?} does not belong to these shards and conditions, or is listed twice",
                    o.item, o.condition
                )));
            }
            if o.status == Status::Ok {
                ok.entry(o.condition.as_str()).or_default().insert(o.item);
            }
        }
        if let Some((k, c)) = expected.first() {
            return Err(bad(format!(
                "{} outcome(s) are missing (first: item {k} under {c:?}); the run did not finish",
                expected.len()
            )));
        }
        for c in &self.conditions {
            let acc = &self.accumulators[&c.key];
            let items: Vec<usize> = acc.observations().iter().map(|o| o.item).collect();
            let unique: BTreeSet<usize> = items.iter().copied().collect();
            if unique.len() != items.len() {
                return Err(bad(format!("{}: an item is observed twice", c.key)));
            }
            if Some(&unique) != ok.get(c.key.as_str()).or(Some(&BTreeSet::new())) {
                return Err(bad(format!(
                    "{}: the observations do not match the outcomes marked ok",
                    c.key
                )));
            }
            for o in acc.observations() {
                if o.shares.len() != self.config.length || o.shares.iter().any(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "{}: item {} has a share vector of {} values (expected {} finite values)",
                        c.key,
                        o.item,
                        o.shares.len(),
                        self.config.length
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes the records as JSON at `path`, atomically.
    ///
    /// **Errors** if the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| bad(e.to_string()))?;
        vidlrp_io::atomic_write(path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
        Ok(())
    }
}

/// Combines the records of the shards of one run into the records of the whole run.
///
/// **Errors** (never panics) if a part is inconsistent ([`Records::check`]); if the parts
/// differ in command, options, manifest or weights (by content hash), conditions or manifest
/// size; if they were cut into different numbers of shards; or if a shard is missing or
/// given twice.
pub fn merge(parts: Vec<Records>) -> Result<Records> {
    let mut it = parts.into_iter();
    let mut all = it.next().ok_or_else(|| bad("nothing to merge"))?;
    all.check()?;
    for r in it {
        r.check()?;
        if r.command != all.command {
            return Err(bad(format!(
                "cannot merge a {} run with a {} run",
                r.command, all.command
            )));
        }
        if r.config.manifest_sha256 != all.config.manifest_sha256 {
            return Err(bad(format!(
                "the shards were run on different manifests ({} and {} differ in content)",
                all.config.manifest.display(),
                r.config.manifest.display()
            )));
        }
        if r.config.weights_sha256 != all.config.weights_sha256 {
            return Err(bad(format!(
                "the shards were run with different weights ({} and {} differ in content)",
                all.config.weights.display(),
                r.config.weights.display()
            )));
        }
        if r.config.comparable() != all.config.comparable() || r.conditions != all.conditions {
            return Err(bad(format!(
                "the shards of this {} run were run with different options",
                r.command
            )));
        }
        if r.manifest_items != all.manifest_items {
            return Err(bad("the shards saw manifests of different sizes"));
        }
        let n = all.shards[0].count;
        if r.shards[0].count != n {
            return Err(bad(format!(
                "the shards were cut into different numbers of parts ({n} and {})",
                r.shards[0].count
            )));
        }
        if let Some(s) = r.shards.iter().find(|s| all.shards.contains(s)) {
            return Err(bad(format!("shard {s} is given twice")));
        }
        for (k, acc) in &r.accumulators {
            all.accumulators
                .get_mut(k)
                .ok_or_else(|| bad(format!("condition {k:?} is not in every shard")))?
                .merge(acc)?;
        }
        all.outcomes.extend(r.outcomes);
        all.shards.extend(r.shards);
    }
    all.shards.sort();
    let n = all.shards[0].count;
    let missing: Vec<String> = (0..n)
        .filter(|i| !all.shards.iter().any(|s| s.index == *i))
        .map(|i| format!("{i}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!("shard(s) {} are missing", missing.join(", "))));
    }
    let order: BTreeMap<&str, usize> = all
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), i))
        .collect();
    let mut outcomes = std::mem::take(&mut all.outcomes);
    outcomes.sort_by_key(|o| (o.item, order.get(o.condition.as_str()).copied()));
    all.outcomes = outcomes;
    all.check()?;
    Ok(all)
}
