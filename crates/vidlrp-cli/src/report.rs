//! What the commands print: the JSON summary of an explanation, and timing.

use std::time::Instant;

use anyhow::Result;
use serde_json::{json, Value};
use vidlrp_core::{Backend, Composite, Explanation, HostTensor, Sequential, Target};

/// Runs an explanation and returns it with its wall time in seconds.
pub fn timed_explain<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    x: &HostTensor,
    target: &Target,
    composite: &Composite,
) -> Result<(Explanation, f64)> {
    let start = Instant::now();
    let xb = be.upload(x)?;
    let e = net.explain(be, &xb, target, composite)?;
    Ok((e, start.elapsed().as_secs_f64()))
}

/// A contact-sheet row label for the explanation of the first sample by `method`: the
/// method, the explained class (with its name if `labels` has one) and its logit, one per
/// line, as the paper's Fig. 1 names them.
pub fn row_label(method: &str, e: &Explanation, labels: Option<&[String]>) -> String {
    let c = e.classes[0];
    let name = labels
        .and_then(|l| l.get(c))
        .map_or(String::new(), |n| format!(" {n}"));
    format!("{method}\nclass {c}{name}\nlogit {:.2}", e.scores[0])
}

/// The label of a sheet's input row: `input`, and the true class where known.
pub fn input_label(true_class: Option<usize>, labels: Option<&[String]>) -> String {
    match true_class {
        None => "input".into(),
        Some(c) => match labels.and_then(|l| l.get(c)) {
            Some(n) => format!("input\ntrue: {c} {n}"),
            None => format!("input\ntrue: {c}"),
        },
    }
}

/// The JSON summary of an explanation: per sample the class, label, logit, top-5, relevance
/// sum and conservation `sum R / f_c(x)`; per layer the rule and relevance sums.
pub fn summary(e: &Explanation, composite: &Composite, labels: Option<&[String]>) -> Value {
    let name = |c: usize| labels.and_then(|l| l.get(c)).map(String::as_str);
    let conservation = e.conservation();
    let samples: Vec<Value> = (0..e.classes.len())
        .map(|n| {
            let top5: Vec<Value> = e
                .top_k(n, 5)
                .into_iter()
                .map(|(c, v)| json!({"class": c, "label": name(c), "logit": v}))
                .collect();
            json!({
                "class": e.classes[n],
                "label": name(e.classes[n]),
                "logit": e.scores[n],
                "top5": top5,
                "relevance_sum": e.input_sums[n],
                "conservation": conservation[n],
            })
        })
        .collect();
    let layers: Vec<Value> = e
        .layers
        .iter()
        .map(|l| {
            json!({
                "layer": l.layer,
                "kind": l.kind,
                "rule": l.rule,
                "relevance_sum": l.input_sum,
                "forward_s": l.forward_s,
                "relevance_s": l.relevance_s,
            })
        })
        .collect();
    json!({
        "method": composite.name,
        "samples": samples,
        "layers": layers,
    })
}

/// The frame-wise relevance shares `r_t` of a relevance map.
pub fn frame_shares(r: &HostTensor) -> Result<Vec<f64>> {
    Ok(vidlrp_stats::frame_shares(r.data(), r.shape())?)
}
