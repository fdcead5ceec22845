//! `vidlrp reproduce --vary FACTOR=v1,v2,...`: the whole run at each level of one factor of
//! the data set or the training, and the claims against the factor (STUDY.md, study.html, a
//! figure of the border strengths with their intervals).

use std::path::Path;

use crate::document::{html, markdown, Block};
use crate::plan::Plan;
use crate::run::{run_one, Lab, Models, RunClaims};
use crate::Result;

/// A factor a study varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// The share of each video's frames with class motion.
    ActionShare,
    /// The step the models are trained at.
    TrainStep,
    /// The share of videos opening with a title card.
    TitleShare,
}

impl Factor {
    /// The name as `--vary` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Factor::ActionShare => "action-share",
            Factor::TrainStep => "train-step",
            Factor::TitleShare => "title-share",
        }
    }

    /// Sets the factor to `v` in `plan`. Training at step `s` needs training videos of
    /// `15 s + 1` frames and test videos long enough for the offset sweep at step `s`, and
    /// the step sweep includes `s`.
    fn apply(self, plan: &mut Plan, v: f64) {
        match self {
            Factor::ActionShare => plan.action_share = v,
            Factor::TitleShare => plan.title_share = v,
            Factor::TrainStep => {
                let s = v as usize;
                plan.train_step = s;
                plan.frames = plan.frames.max(15 * s + 1);
                if !plan.steps.contains(&s) {
                    plan.steps.push(s);
                    plan.steps.sort_unstable();
                }
                // Test videos long enough for the offset sweep at step s.
                let last_offset = plan.offsets.iter().copied().max().unwrap_or(0);
                plan.test_frames = plan.test_frames.max(last_offset + 15 * s + 1);
            }
        }
    }
}

/// One factor and its levels.
#[derive(Debug, Clone)]
pub struct Vary {
    /// The factor.
    pub factor: Factor,
    /// Its levels, in the order given.
    pub levels: Vec<f64>,
}

/// Parses `FACTOR=v1,v2,...` (`action-share` in (0, 1], `title-share` in [0, 1],
/// `train-step` a whole number 1..=16), at least two distinct levels.
pub fn parse_vary(s: &str) -> Result<Vary, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("expected FACTOR=v1,v2,... (got {s:?})"))?;
    let factor = match name {
        "action-share" => Factor::ActionShare,
        "train-step" => Factor::TrainStep,
        "title-share" => Factor::TitleShare,
        f => {
            return Err(format!(
                "unknown factor {f:?} (action-share, train-step or title-share)"
            ))
        }
    };
    let levels: Vec<f64> = values
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    for &v in &levels {
        let ok = match factor {
            Factor::ActionShare => v > 0.0 && v <= 1.0,
            Factor::TitleShare => (0.0..=1.0).contains(&v),
            Factor::TrainStep => v.fract() == 0.0 && (1.0..=16.0).contains(&v),
        };
        if !ok {
            return Err(format!("{name}: level {v} is out of range"));
        }
    }
    let mut distinct = levels.clone();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 || distinct.len() != levels.len() {
        return Err(format!("{name}: give at least two distinct levels"));
    }
    Ok(Vary { factor, levels })
}

/// Training snippets per second (validation included) and analysed (video, condition) pairs
/// per second of the default run on a 2-core AMD EPYC (2026-12-07: 3 models in 515 s, each
/// 15 x 768 snippets in 129-134 s and 48 x 50 analyses in 27-29 s), for the study's estimate.
const SNIPPETS_PER_SECOND: f64 = 87.0;
const ANALYSES_PER_SECOND: f64 = 89.0;

/// The expected wall time of one run of `plan` on a 2-core machine.
pub fn expected_seconds(plan: &Plan) -> f64 {
    let share = |i: usize| (plan.videos * plan.split[i]) as f64 / 100.0;
    let snippets = (plan.epochs * plan.snippets_per_video) as f64 * share(0);
    let conditions = (3 + 2 * plan.steps.len() + plan.offsets.len()) as f64;
    let per_model = snippets / SNIPPETS_PER_SECOND + share(2) * conditions / ANALYSES_PER_SECOND;
    plan.seeds as f64 * per_model + 40.0
}

/// The level as a directory name part and as text (`0.5`, `2`).
pub fn level_text(v: f64) -> String {
    format!("{v}")
}

/// The plan of each level of `vary` on `base`.
pub fn level_plans(base: &Plan, vary: &Vary) -> Vec<Plan> {
    (vary.levels.iter())
        .map(|&v| {
            let mut p = base.clone();
            vary.factor.apply(&mut p, v);
            p
        })
        .collect()
}

/// The directory of level `v` under a study's directory: `FACTOR=v`.
pub fn level_dir(out: &Path, vary: &Vary, v: f64) -> std::path::PathBuf {
    out.join(format!("{}={}", vary.factor.name(), level_text(v)))
}

/// A study: the whole run of `base` with models trained from `seed` at each level of `vary`
/// (each in its own directory under `out`, kept where finished), then STUDY.md and
/// study.html. Returns each level with its judged claims.
///
/// **Errors** as [`run_one`], or if the study's report cannot be written.
pub fn study(
    lab: &dyn Lab,
    base: &Plan,
    vary: &Vary,
    seed: u64,
    quick: bool,
    out: &Path,
) -> Result<Vec<(f64, RunClaims)>> {
    std::fs::create_dir_all(out)?;
    let plans = level_plans(base, vary);
    let mut levels = Vec::new();
    for (i, (&v, plan)) in vary.levels.iter().zip(plans).enumerate() {
        lab.note(&format!(
            "level {}/{}: {} = {}",
            i + 1,
            vary.levels.len(),
            vary.factor.name(),
            level_text(v)
        ));
        let dir = level_dir(out, vary, v);
        levels.push((v, run_one(lab, plan, &Models::Trained, seed, quick, &dir)?));
    }
    write_report(out, vary, &levels)?;
    Ok(levels)
}

/// STUDY.md, study.html and the figure of border strength against the factor.
fn write_report(out: &Path, vary: &Vary, levels: &[(f64, RunClaims)]) -> Result<()> {
    let name = vary.factor.name();
    let Some((_, first)) = levels.first() else {
        return Ok(());
    };
    let mut doc = vec![Block::Heading(
        1,
        format!("Study: the claims against {name}"),
    )];
    doc.push(Block::Para(format!(
        "A study of {name}: the whole experiment (data set, {} models from \
         their own seeds, analyses, claims) was run at each level of {name}, everything else \
         as in the default run. Each level's own report is in its directory ({name}=LEVEL/\
         REPORT.md). Verdicts are pooled over the models by the one rule of the reports \
         (holds / does not hold / inconclusive by the 95 % interval's side), with how many \
         models it holds in.",
        first.seeds
    )));
    let ids: Vec<String> = first.results.iter().map(|c| c.claim.id.clone()).collect();
    let mut header = vec![name.to_string()];
    header.extend(ids.iter().cloned());
    let rows = (levels.iter())
        .map(|(v, r)| {
            let mut row = vec![level_text(*v)];
            row.extend(
                (r.results.iter())
                    .map(|c| format!("{} ({}/{})", c.verdict_word(), c.holds_in, r.seeds)),
            );
            row
        })
        .collect();
    doc.push(Block::Heading(2, "Verdicts per level".into()));
    doc.push(Block::Table(header, rows));
    // Border strength a pooled: C1 (DTD), C1 (SA) and C3 (DTD-u) are these means.
    let border = |r: &RunClaims, id: &str| {
        (r.results.iter())
            .find(|c| c.claim.id == id)
            .map(|c| c.pooled.estimate)
    };
    let methods = [("DTD", "C1 (DTD)"), ("SA", "C1 (SA)"), ("DTD-u", "C3")];
    let mut rows = Vec::new();
    for (v, r) in levels {
        let mut row = vec![level_text(*v)];
        for (_, id) in methods {
            row.push(border(r, id).map_or("-".into(), |e| {
                format!(
                    "{:.4} [{:.4}, {:.4}]",
                    e.value, e.interval.lo, e.interval.hi
                )
            }));
        }
        rows.push(row);
    }
    doc.push(Block::Heading(
        2,
        "Border strength a against the factor".into(),
    ));
    doc.push(Block::Table(
        vec![
            name.into(),
            "DTD a, pooled [95 %]".into(),
            "SA a, pooled [95 %]".into(),
            "DTD-u a, pooled [95 %]".into(),
        ],
        rows,
    ));
    let series: Vec<vidlrp_viz::plots::Series> = methods
        .iter()
        .map(|(label, id)| {
            let points: Vec<_> = (levels.iter())
                .filter_map(|(v, r)| Some((*v, border(r, id)?)))
                .collect();
            vidlrp_viz::plots::Series {
                label: label.to_string(),
                points: points.iter().map(|(v, e)| (*v, e.value)).collect(),
                intervals: (points.iter())
                    .map(|(_, e)| (e.interval.lo, e.interval.hi))
                    .collect(),
            }
        })
        .collect();
    let stem = format!("border_vs_{}", name.replace('-', "_"));
    vidlrp_viz::plots::xy_figure(
        &out.join(&stem),
        &format!("Border strength against {name}"),
        name,
        "border strength a (pooled, 95 % interval)",
        &series,
        false,
    )?;
    doc.push(Block::Figure(
        format!("{stem}.png"),
        format!("Border strength a of DTD, SA and DTD-u against {name}, pooled over the models, with 95 % intervals."),
    ));
    let mut outputs = vidlrp_io::Outputs::new();
    let md = outputs.file(&out.join("STUDY.md"))?;
    let page = outputs.file(&out.join("study.html"))?;
    std::fs::write(&md, markdown(&doc))?;
    std::fs::write(&page, html(&doc, out))?;
    outputs.publish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parses_factors_and_rejects_bad_levels() {
        let v = parse_vary("action-share=0.25,0.5,1").unwrap();
        assert_eq!(v.factor, Factor::ActionShare);
        assert_eq!(v.levels, vec![0.25, 0.5, 1.0]);
        assert_eq!(
            parse_vary("train-step=1,2").unwrap().factor,
            Factor::TrainStep
        );
        for bad in [
            "action-share=0,0.5",
            "action-share=0.5",
            "action-share=0.5,0.5",
            "train-step=1,2.5",
            "title-share=0,1.5",
            "speed=1,2",
            "action-share",
            "title-share=a,b",
        ] {
            assert!(parse_vary(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn training_at_a_step_lengthens_the_videos_and_joins_the_sweep() {
        let mut p = Plan::full();
        Factor::TrainStep.apply(&mut p, 4.0);
        assert_eq!(p.train_step, 4);
        assert!(p.frames >= 61);
        assert!(p.test_frames >= 256 + 61);
        let mut q = Plan::quick();
        Factor::TrainStep.apply(&mut q, 4.0);
        assert!(q.test_frames >= 64 + 61);
        Factor::TrainStep.apply(&mut p, 3.0);
        assert!(p.steps.contains(&3) && p.steps.windows(2).all(|w| w[0] < w[1]));
    }
}
