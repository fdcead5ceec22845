//! `vidlrp`: explain video 3D-CNN predictions with deep Taylor decomposition / LRP.

mod analysis;
mod clip;
mod dataset;
mod demo;
mod device;
mod explain;
mod init;
mod sheet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc returns every large buffer to the OS on free, so each layer would fault in fresh pages
/// (a 3-4x slowdown of the memory-bound kernels); mimalloc reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
      vidlrp init --seed 1 --out c3d-u.safetensors\n  \
      vidlrp explain --weights c3d.safetensors --input clip.npy --method dtd --bounds caffe --out r.npy\n  \
      vidlrp explain --weights c3d.safetensors --video match.mp4 --offset 32 --out r.npy --heatmaps pics\n  \
      vidlrp sheet --weights c3d.safetensors --video frames/ --out sheet.png\n  \
      vidlrp profile --manifest videos.csv --weights c3d.safetensors --out profile/\n\n\
      Run `vidlrp <command> --help` for each command's options and examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Run the main job on built-in data: a seeded C3D and a synthetic clip, DTD and SA.
    Demo(demo::Args),
}

/// mimalloc's `purge_delay` option (the one before `use_numa_nodes` in mimalloc's option enum).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t =
    libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Keeps freed memory committed for reuse (`purge_delay = -1`): every layer of an explanation
/// allocates tensors of the same few sizes (400 MB each at batch 8), and handing them back to
/// the OS makes the next layer fault every page in again.
fn keep_freed_memory() {
    // SAFETY: sets one option of the allocator in use; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(a) => explain::run(a),
        Command::Init(a) => init::run(a),
        Command::Sheet(a) => sheet::run(a),
        Command::Profile(a) => analysis::profile(a),
        Command::SweepSteps(a) => analysis::sweep_steps(a),
        Command::SweepOffsets(a) => analysis::sweep_offsets(a),
        Command::Merge(a) => analysis::merge(a),
        Command::Demo(a) => demo::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    fn the_purge_delay_option_index_is_right() {
        // purge_delay defaults to 1000 ms (mimalloc v3) or 10 ms (v2); use_numa_nodes, the
        // option after it, defaults to 0.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            [1000, 10, -1].contains(&v),
            "option {} is {v}",
            super::MI_OPTION_PURGE_DELAY
        );
    }
}
