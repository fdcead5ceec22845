//! `vidlrp reproduce`: the paper's experiment end to end, in one command. A synthetic data set
//! where motion decides the class, a C3D-shaped model trained on random snippets of it (as the
//! paper's model was), the paper's analyses on its held-out videos, and a report that marks
//! each of the paper's claims as holding or not for this model.
//!
//! Every stage is an ordinary `vidlrp` command, run in this process with the arguments the
//! report lists, writing into its own directory under `--out`; a stage whose output exists is
//! not run again, so an interrupted run continues where it stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::reproduce_plan::Plan;
use crate::reproduce_report::StageRun;

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    vidlrp reproduce --out repro            # the default run (about 10 minutes on 2 cores)\n  \
    vidlrp reproduce --out repro-quick --quick   # a small run (under 2 minutes), what CI runs\n\n\
    Stages, each a vidlrp command writing into OUT: synth (data/), train (model/), init (the\n\
    untrained baseline), profile (profile/: Table 1, Fig. 2), sweep-steps (steps/: Figs. 3, 5),\n\
    sweep-offsets (offsets/: Fig. 4), sheet (sheets/: trained vs untrained heatmaps), then\n\
    OUT/REPORT.md and OUT/report.html: the data set, the training, Table 1, the figures and the\n\
    paper's five claims, each marked holds / does not hold / inconclusive with the measured\n\
    value and its bootstrap interval. A rerun on the same OUT skips the finished stages.")]
pub struct Args {
    /// Output directory (created if missing; finished stages in it are kept).
    #[arg(long)]
    out: PathBuf,
    /// A small run for CI: 4 classes, 24 short videos, 2 epochs, steps up to 4.
    #[arg(long)]
    quick: bool,
    /// Seed of the data set and of the training.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    device: crate::device::DeviceArgs,
}

/// Regions removed in the spatial perturbation (of 16 x (size/8)^2).
const EVAL_REGION_STEPS: usize = 50;

/// One stage: a vidlrp command line, and the file whose existence means it is done.
struct Stage {
    name: &'static str,
    argv: Vec<String>,
    done_when: PathBuf,
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `vidlrp reproduce`.
pub fn run(a: Args) -> Result<()> {
    let plan = if a.quick { Plan::quick() } else { Plan::full() };
    let out = &a.out;
    for d in ["", "model", "sheets"] {
        let d = out.join(d);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    // The settings of the run the directory holds: finished stages are kept only for the same.
    let settings = serde_json::to_string_pretty(&json!({"plan": &plan, "seed": a.seed}))? + "\n";
    let recorded = out.join("settings.json");
    match std::fs::read_to_string(&recorded) {
        Ok(old) if old != settings => bail!(
            "{} holds a run with other settings ({}); choose another output directory",
            out.display(),
            recorded.display()
        ),
        Ok(_) => {}
        Err(_) => vidlrp_io::atomic_write(&recorded, |w| {
            std::io::Write::write_all(w, settings.as_bytes())
        })?,
    }
    let p = |rel: &str| out.join(rel).display().to_string();
    let device: Vec<String> = a.device.to_argv();
    let data_args = |rest: &[String]| -> Vec<String> {
        let mut v = vec![
            s("--manifest"),
            p("data/test.csv"),
            s("--weights"),
            p("model/model.safetensors"),
            s("--bootstrap"),
            s(plan.bootstrap),
            // An analysis interrupted mid-way continues from its journal.
            s("--resume"),
        ];
        v.extend_from_slice(rest);
        v.extend(device.iter().cloned());
        v
    };
    let mut stages = vec![
        Stage {
            name: "synth",
            argv: vec![
                s("synth"),
                s("--out"),
                p("data"),
                s("--classes"),
                s(plan.classes),
                s("--videos"),
                s(plan.videos),
                s("--frames"),
                s(plan.frames),
                s("--test-frames"),
                s(plan.test_frames),
                s("--size"),
                s(plan.frame_size),
                s("--distractors"),
                s(plan.distractors),
                s("--title-share"),
                s(plan.title_share),
                s("--split"),
                list(&plan.split),
                s("--seed"),
                s(a.seed),
            ],
            done_when: out.join("data/synth.json"),
        },
        Stage {
            name: "train",
            argv: [
                vec![
                    s("train"),
                    s("--manifest"),
                    p("data/train.csv"),
                    s("--val"),
                    p("data/val.csv"),
                    s("--test"),
                    p("data/test.csv"),
                    s("--out"),
                    p("model/model.safetensors"),
                    s("--size"),
                    s(plan.input_size),
                    s("--width"),
                    s(plan.width),
                    s("--epochs"),
                    s(plan.epochs),
                    s("--snippets-per-video"),
                    s(plan.snippets_per_video),
                    s("--batch"),
                    s(plan.batch),
                    s("--optimizer"),
                    s(plan.optimizer),
                    s("--lr"),
                    s(plan.lr),
                    s("--dropout"),
                    s(plan.dropout),
                    s("--seed"),
                    s(a.seed),
                    s("--resume"),
                ],
                device.clone(),
            ]
            .concat(),
            done_when: out.join("model/model.safetensors"),
        },
    ];
    let started = Instant::now();
    let mut timings: Vec<StageRun> = Vec::new();
    let total = 10;
    // The first two stages decide the untrained baseline's shape: run them before listing the rest.
    for (i, stage) in stages.iter().enumerate() {
        run_stage(i + 1, total, stage, &mut timings)?;
    }
    let spec = {
        let w = vidlrp_c3d::load_weights(&out.join("model/model.safetensors"))?;
        vidlrp_c3d::C3dSpec::from_weights(&w.tensors)?
    };
    let preset = format!("caffe@{}", plan.input_size);
    let (offset, clip_video, true_class) = sheet_clip(out)?;
    let sheet = |weights: String, target: &str| -> Vec<String> {
        [
            vec![
                s("sheet"),
                s("--weights"),
                weights,
                s("--video"),
                clip_video.clone(),
                s("--offset"),
                s(offset),
                s("--preset"),
                preset.clone(),
                s("--methods"),
                s("dtd,sa"),
                s("--labels"),
                p("data/labels.txt"),
                s("--true-class"),
                s(true_class),
                s("--out"),
                p(target),
            ],
            device.clone(),
        ]
        .concat()
    };
    // Faithfulness (AOPC, MoRF) of DTD and SA against the random baseline on the test clips.
    let evaluate = |region: String, steps: usize, dir: &str| -> Vec<String> {
        [
            vec![
                s("evaluate"),
                s("--weights"),
                p("model/model.safetensors"),
                s("--manifest"),
                p("data/test.csv"),
                s("--methods"),
                s("dtd,sa,random"),
                s("--order"),
                s("morf"),
                s("--region"),
                region,
                s("--steps"),
                s(steps),
                s("--bootstrap"),
                s(plan.bootstrap),
                s("--seed"),
                s(a.seed),
                s("--out"),
                p(dir),
            ],
            device.clone(),
        ]
        .concat()
    };
    stages = vec![
        Stage {
            name: "init",
            argv: vec![
                s("init"),
                s("--widths"),
                list(&spec.conv_widths),
                s("--fc"),
                list(&spec.fc_widths),
                s("--classes"),
                s(spec.classes),
                s("--input-size"),
                format!("16x{0}x{0}", plan.input_size),
                s("--seed"),
                s(0),
                s("--out"),
                p("model/untrained.safetensors"),
            ],
            done_when: out.join("model/untrained.safetensors"),
        },
        Stage {
            name: "profile",
            argv: [
                vec![s("profile")],
                data_args(&[s("--methods"), s("dtd,sa,dtd-u"), s("--out"), p("profile")]),
            ]
            .concat(),
            done_when: out.join("profile/summary.json"),
        },
        Stage {
            name: "sweep-steps",
            argv: [
                vec![s("sweep-steps")],
                data_args(&[
                    s("--steps"),
                    list(&plan.steps),
                    s("--methods"),
                    s("dtd,sa"),
                    s("--out"),
                    p("steps"),
                ]),
            ]
            .concat(),
            done_when: out.join("steps/summary.json"),
        },
        Stage {
            name: "sweep-offsets",
            argv: [
                vec![s("sweep-offsets")],
                data_args(&[
                    s("--offsets"),
                    list(&plan.offsets),
                    s("--methods"),
                    s("dtd"),
                    s("--out"),
                    p("offsets"),
                ]),
            ]
            .concat(),
            done_when: out.join("offsets/summary.json"),
        },
        Stage {
            name: "sheet (trained)",
            argv: sheet(p("model/model.safetensors"), "sheets/trained.png"),
            done_when: out.join("sheets/trained.png"),
        },
        Stage {
            name: "sheet (untrained)",
            argv: sheet(p("model/untrained.safetensors"), "sheets/untrained.png"),
            done_when: out.join("sheets/untrained.png"),
        },
        Stage {
            name: "evaluate (regions)",
            argv: evaluate(s("1,8,8"), EVAL_REGION_STEPS, "eval-regions"),
            done_when: out.join("eval-regions/summary.json"),
        },
        Stage {
            name: "evaluate (frames)",
            argv: evaluate(format!("1,{0},{0}", plan.input_size), 16, "eval-frames"),
            done_when: out.join("eval-frames/summary.json"),
        },
    ];
    for (i, stage) in stages.iter().enumerate() {
        run_stage(i + 3, total, stage, &mut timings)?;
    }
    let report = crate::reproduce_report::Inputs {
        out: out.clone(),
        plan: plan.clone(),
        chance: plan.chance(),
        stages: timings,
        total_seconds: started.elapsed().as_secs_f64(),
        quick: a.quick,
    };
    let claims = crate::reproduce_report::write(&report)?;
    println!(
        "{}",
        json!({"report": out.join("REPORT.md"), "html": out.join("report.html"), "claims": claims,
               "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// Runs one stage unless its output exists; records its wall time.
fn run_stage(index: usize, total: usize, stage: &Stage, runs: &mut Vec<StageRun>) -> Result<()> {
    let command = format!("vidlrp {}", stage.argv.join(" "));
    let mut run = StageRun {
        name: stage.name.to_string(),
        command: command.clone(),
        seconds: 0.0,
        ran: false,
    };
    if stage.done_when.exists() {
        eprintln!("[{index}/{total}] {}: done earlier, kept", stage.name);
        runs.push(run);
        return Ok(());
    }
    eprintln!("[{index}/{total}] {}: {command}", stage.name);
    let t = Instant::now();
    crate::run_argv(&stage.argv)
        .with_context(|| format!("stage {} failed ({command})", stage.name))?;
    run.seconds = t.elapsed().as_secs_f64();
    run.ran = true;
    runs.push(run);
    Ok(())
}

/// The clip of the example sheets: the first test video, from the first frame after its title
/// card (if any).
fn sheet_clip(out: &Path) -> Result<(usize, String, usize)> {
    let synth = vidlrp_synth::Description::read(&out.join("data"))?;
    let Some(v) = synth.summary.videos.iter().find(|v| v.split == "test") else {
        bail!("the data set has no test video");
    };
    let path = out.join("data").join(&v.path);
    Ok((v.title_frames, path.display().to_string(), v.label))
}
