//! `vidlrp`: explain video 3D-CNN predictions with deep Taylor decomposition / LRP.

mod analysis;
mod clip;
mod demo;
mod device;
mod evaluate;
mod explain;
mod init;
mod methods;
mod progress;
mod report;
mod reproduce;
mod sheet;
mod submit;
mod summary;
mod synth;
mod train;
mod weights;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vidlrp",
    version,
    about = "Explain video 3D-CNN (C3D) predictions with deep Taylor decomposition / LRP",
    long_about = "Explain video 3D-CNN (C3D) predictions with deep Taylor decomposition (z^B on the \
                  first layer, z+ above, proportional pooling), sensitivity analysis and the LRP \
                  composites Zennit users know.",
    after_help = "Examples:\n  \
      vidlrp demo --out demo                      # seeded C3D + synthetic clip, DTD and SA\n  \
      vidlrp reproduce --out repro                # the paper's experiment end to end, REPORT.md\n  \
      vidlrp init --seed 1 --out c3d-u.safetensors\n  \
      vidlrp explain --weights c3d.safetensors --input clip.npy --method dtd --bounds caffe --out r.npy\n  \
      vidlrp explain --weights c3d.safetensors --video match.mp4 --offset 32 --out r.npy --heatmaps pics\n  \
      vidlrp sheet --weights c3d.safetensors --video frames/ --out sheet.png\n  \
      vidlrp profile --manifest videos.csv --weights c3d.safetensors --out profile/\n  \
      vidlrp inspect c3d.pickle                   # format, origin, architecture, defaults\n  \
      vidlrp convert conv3d_deepnetA_sport1m_iter_1900000 --out c3d-caffe.safetensors\n\n\
      --weights takes safetensors, .npz, PyTorch .pt/.pth/.pickle (zip or legacy, MMAction2\n\
      names too) and Caffe models, recognised by content.\n\n\
      Run `vidlrp <command> --help` for each command's options and examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print the command's full JSON summary on stdout (one object) instead of a short
    /// human summary; data-set commands keep the full summary in OUT/summary.json either way.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Explain one clip (or a batch) with a rule preset; write the relevance as .npy.
    Explain(explain::Args),
    /// Write a seeded, He-normal initialised C3D (the untrained baseline DTD-u).
    Init(init::Args),
    /// Draw a contact sheet: input frames and one heatmap row per method (Fig. 1/6 of the paper).
    Sheet(sheet::Args),
    /// Border and lookahead effects of DTD, SA and DTD-u over a data set (Table 1, Fig. 2).
    Profile(analysis::ProfileArgs),
    /// Border strength and top-5 accuracy for each step size (Figs. 3 and 5).
    SweepSteps(analysis::StepsArgs),
    /// Lookahead strength for each snippet offset (Fig. 4).
    SweepOffsets(analysis::OffsetsArgs),
    /// Merge the outputs of sharded data-set runs into one.
    Merge(analysis::MergeArgs),
    /// How faithful is each explanation? Region/frame perturbation curves and AOPC.
    Evaluate(evaluate::Args),
    /// Run a data-set command on a cluster: a Slurm array job (one shard per task) and a merge.
    Submit(submit::Args),
    /// Run the main job on built-in data: the built-in trained C3D and its untrained twin, DTD
    /// and SA on a held-out synthetic clip.
    Demo(demo::Args),
    /// Convert any C3D weight file (PyTorch, MMAction2, Caffe) to safetensors with port names.
    Convert(weights::ConvertArgs),
    /// Show a weight file's format, origin, tensors, architecture and implied defaults.
    Inspect(weights::InspectArgs),
    /// Write a synthetic data set where motion decides the class (the reproduction's data).
    Synth(synth::Args),
    /// Train a C3D-shaped model on random snippets of a data set.
    Train(train::Args),
    /// The paper's experiment end to end: synthetic data, training, analyses, REPORT.md.
    Reproduce(reproduce::Args),
}

/// Runs one command.
fn dispatch(command: Command) -> anyhow::Result<summary::Finished> {
    match command {
        Command::Explain(a) => explain::run(a),
        Command::Init(a) => init::run(a),
        Command::Sheet(a) => sheet::run(a),
        Command::Profile(a) => analysis::profile(a),
        Command::SweepSteps(a) => analysis::sweep_steps(a),
        Command::SweepOffsets(a) => analysis::sweep_offsets(a),
        Command::Merge(a) => analysis::merge(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Submit(a) => submit::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Convert(a) => weights::convert(a),
        Command::Inspect(a) => weights::inspect(a),
        Command::Synth(a) => synth::run(a),
        Command::Train(a) => train::run(a),
        Command::Reproduce(a) => reproduce::run(a),
    }
}

fn main() -> ExitCode {
    vidlrp_alloc::init();
    // Ctrl-C or SIGTERM ends the process without destructors: remove what was staged first,
    // so an interrupted command leaves nothing behind either.
    let _ = ctrlc::set_handler(|| {
        vidlrp_io::remove_staged();
        eprintln!("interrupted: no output was written");
        std::process::exit(130);
    });
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(finished) => {
            if cli.json {
                println!("{}", finished.json);
            } else {
                print!("{}", finished.text);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
