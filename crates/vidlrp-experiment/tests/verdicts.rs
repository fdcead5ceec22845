//! Every claim's rule on constructed data: where the claim holds, where the opposite holds,
//! where there is no effect; and the calibration: over 200 simulated data sets without any
//! effect, "holds" comes out for at most 8 % of them, for every claim, on one model and pooled
//! over three (and at most 10 % where the three models differ by a random offset).

use std::collections::BTreeMap;

use vidlrp_experiment::{
    claims, judge_paired, Bootstrap, Claim, Design, Paired, Quantity, Verdict,
};
use vidlrp_rng::SplitMix64;

/// Snippets per model (the reproduction's 40 test videos).
const ITEMS: usize = 40;
/// Frames per snippet.
const FRAMES: usize = 16;

fn design() -> Design {
    Design {
        steps: vec![0, 1, 2, 4, 8, 16, 32],
        offsets: (0..=256).step_by(8).collect(),
        train_step: 1,
        classes: 24,
    }
}

fn normal(rng: &mut SplitMix64) -> f64 {
    // Box-Muller on two uniforms in (0, 1].
    let u = 1.0 - rng.uniform();
    let v = rng.uniform();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// What a simulated model's conditions carry.
#[derive(Clone, Copy)]
struct Effects {
    /// Border strength `a` added to every share vector of a condition, by the condition's
    /// index within its claim (a function so a claim can be given a trend).
    border: fn(usize) -> f64,
    /// Lookahead `b'` added, by condition index.
    lookahead: fn(usize) -> f64,
    /// Shift of the hit probability's latent threshold, by condition index.
    accuracy: fn(usize) -> f64,
    /// Standard deviation of a per-model border/lookahead offset common to all its conditions
    /// (between-seed variation).
    model_spread: f64,
}

const NONE: Effects = Effects {
    border: |_| 0.0,
    lookahead: |_| 0.0,
    accuracy: |_| 0.0,
    model_spread: 0.0,
};

/// One model's paired values for `claim`: per item a latent share vector and difficulty
/// shared by all conditions (what pairing exploits), plus per-condition noise.
fn simulate(claim: &Claim, fx: Effects, rng: &mut SplitMix64) -> Paired {
    let tau = vidlrp_stats::tau(FRAMES);
    let model_border = fx.model_spread * normal(rng);
    let items: Vec<(Vec<f64>, f64)> = (0..ITEMS)
        .map(|_| {
            let base: Vec<f64> = (0..FRAMES)
                .map(|_| 1.0 / FRAMES as f64 + 0.01 * normal(rng))
                .collect();
            (base, normal(rng))
        })
        .collect();
    let columns: Vec<BTreeMap<usize, f64>> = (claim.conditions.iter().enumerate())
        .map(|(c, cref)| {
            (items.iter().enumerate())
                .map(|(i, (base, difficulty))| {
                    let shares: Vec<f64> = (base.iter().zip(&tau))
                        .map(|(b, t)| {
                            b + 0.006 * normal(rng)
                                + ((fx.border)(c) + model_border) * t * t
                                + (fx.lookahead)(c) * t
                        })
                        .collect();
                    let v = match cref.quantity {
                        Quantity::Border => vidlrp_stats::fit_quadratic(&shares).unwrap()[0],
                        Quantity::Lookahead => vidlrp_stats::fit_linear(&shares).unwrap()[0],
                        Quantity::Top1 | Quantity::Top5 => {
                            let z = difficulty + 0.6 * normal(rng) + (fx.accuracy)(c);
                            f64::from(u8::from(z > 0.0))
                        }
                    };
                    (i, v)
                })
                .collect()
        })
        .collect();
    let refs: Vec<&BTreeMap<usize, f64>> = columns.iter().collect();
    Paired::new(&refs).unwrap()
}

fn claim(id: &str) -> Claim {
    claims(&design())
        .unwrap()
        .into_iter()
        .find(|c| c.id == id)
        .unwrap()
}

fn bootstrap(seed: u64) -> Bootstrap {
    Bootstrap {
        resamples: 1000,
        level: 0.95,
        seed,
    }
}

/// The pooled verdict of `claim` on `models` simulated models.
fn verdict_of(claim: &Claim, fx: Effects, models: usize, seed: u64) -> Verdict {
    let mut rng = SplitMix64(seed);
    let paired: Vec<Paired> = (0..models).map(|_| simulate(claim, fx, &mut rng)).collect();
    judge_paired(claim, &paired, bootstrap(seed))
        .unwrap()
        .pooled
        .verdict
}

// Effects where each claim holds, where its opposite holds.
const A: f64 = 0.01;
const B: f64 = 0.004;

fn border_up(_: usize) -> f64 {
    A
}
fn border_down(_: usize) -> f64 {
    -A
}
/// C2: condition 0 (DTD) has the border effect, condition 1 (DTD-u) not.
fn first_only(c: usize) -> f64 {
    if c == 0 {
        A
    } else {
        0.0
    }
}
fn first_only_neg(c: usize) -> f64 {
    -first_only(c)
}
/// C4: a falls with the step's index (steps 0, 1, 2, ...).
fn falling(c: usize) -> f64 {
    A * (6.0 - c as f64) / 6.0
}
fn rising(c: usize) -> f64 {
    A * c as f64 / 6.0
}
/// C5: b' high at the first three offsets.
fn early_lookahead(c: usize) -> f64 {
    if c < 3 {
        B
    } else {
        0.0
    }
}
fn late_lookahead(c: usize) -> f64 {
    if c < 3 {
        0.0
    } else {
        B
    }
}
/// C6: step index 3 (step 4) more accurate than the rest; or the training step (index 1).
fn step4_better(c: usize) -> f64 {
    if c == 3 {
        1.0
    } else {
        0.0
    }
}
fn train_step_better(c: usize) -> f64 {
    if c == 1 {
        1.0
    } else {
        0.0
    }
}

#[test]
fn each_rule_finds_its_effect_its_opposite_and_no_effect() {
    let border = |f: fn(usize) -> f64| Effects { border: f, ..NONE };
    let lookahead = |f: fn(usize) -> f64| Effects {
        lookahead: f,
        ..NONE
    };
    let accuracy = |f: fn(usize) -> f64| Effects {
        accuracy: f,
        ..NONE
    };
    let cases: [(&str, Effects, Effects); 7] = [
        ("C1 (DTD)", border(border_up), border(border_down)),
        ("C1 (SA)", border(border_up), border(border_down)),
        ("C2", border(first_only), border(first_only_neg)),
        ("C3", border(border_down), border(border_up)),
        ("C4", border(falling), border(rising)),
        ("C5", lookahead(early_lookahead), lookahead(late_lookahead)),
        (
            "C6 (top-1)",
            accuracy(step4_better),
            accuracy(train_step_better),
        ),
    ];
    for (id, holds, opposite) in cases {
        let c = claim(id);
        for models in [1, 3] {
            assert_eq!(
                verdict_of(&c, holds, models, 11),
                Verdict::Holds,
                "{id}, {models} models"
            );
            assert_eq!(
                verdict_of(&c, opposite, models, 12),
                Verdict::DoesNotHold,
                "{id} opposite, {models} models"
            );
        }
        // No effect: not "holds" on a typical data set (the rate is the calibration test's).
        assert_ne!(
            verdict_of(&c, NONE, 3, 13),
            Verdict::Holds,
            "{id}, no effect"
        );
    }
}

/// The share of `sets` simulated data sets without any effect on which `claim` comes out
/// "holds", pooled over `models` models.
fn false_holds(claim: &Claim, fx: Effects, models: usize, sets: u64) -> f64 {
    let holds = (0..sets)
        .filter(|&s| verdict_of(claim, fx, models, 1000 + s) == Verdict::Holds)
        .count();
    holds as f64 / sets as f64
}

#[test]
fn without_any_effect_no_claim_holds_in_more_than_8_percent_of_data_sets() {
    let all = claims(&design()).unwrap();
    let mut report = Vec::new();
    let mut failed = Vec::new();
    // Without and with a border offset per model (between-seed variation, mean 0).
    let spread = Effects {
        model_spread: 0.004,
        ..NONE
    };
    for c in &all {
        for (models, fx, what) in [(1, NONE, ""), (3, NONE, ""), (3, spread, ", models differ")] {
            let rate = false_holds(c, fx, models, 200);
            let line = format!("{} ({models} models{what}): {:.1} %", c.id, 100.0 * rate);
            // Without any effect the rule's promise is at most 8 %. With models that differ,
            // three are few for the model level of the bootstrap (a t with 2 degrees of
            // freedom would be wider still); the bound checked there is 10 %.
            let bound = if what.is_empty() { 0.08 } else { 0.10 };
            if rate > bound {
                failed.push(line.clone());
            }
            report.push(line);
        }
    }
    eprintln!(
        "holds without effect, of 200 data sets:\n{}",
        report.join("\n")
    );
    assert!(failed.is_empty(), "above the bound: {failed:?}");
}
