//! `vidlrp submit slurm`: a data-set command as a Slurm array job (task `i` runs shard `i/N`
//! into `OUT/shards/i`) and a merge job that waits for the whole array (`afterok`) and writes
//! the merged result into `OUT`. Re-submitting the same command runs only the shards that have
//! no outputs yet (each resumes from its journal).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

/// The commands that shard and merge.
const SHARDED: [&str; 4] = ["profile", "sweep-steps", "sweep-offsets", "evaluate"];

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    scheduler: Scheduler,
}

#[derive(clap::Subcommand)]
enum Scheduler {
    /// A Slurm array job (one task per shard) and a merge job after it.
    #[command(after_help = "Examples:\n  \
        vidlrp submit slurm --array 16 --partition gpu --gres gpu:1 --time 04:00:00 -- \\\n      \
        sweep-steps --manifest videos.csv --weights c3d.safetensors --device cuda --out steps/\n  \
        vidlrp submit slurm --array 4 --dry-run -- profile --manifest videos.csv --weights c3d.pickle --out profile/\n\n\
        Writes OUT/slurm/array.sh and OUT/slurm/merge.sh (and with --dry-run stops there),\n\
        submits the array (task i: `vidlrp COMMAND ... --shard i/N --out OUT/shards/i --resume`)\n\
        and the merge (`--dependency=afterok`), and prints the job ids and how to follow them.\n\
        Logs: OUT/slurm/task-I.log, OUT/slurm/merge.log. If a task fails, the merge stays\n\
        pending (DependencyNeverSatisfied); run the same submit again: only the shards without\n\
        outputs run (resuming from their journals), and a new merge replaces the old one.")]
    Slurm(SlurmArgs),
}

#[derive(clap::Args)]
struct SlurmArgs {
    /// Number of array tasks (shards).
    #[arg(long, default_value_t = 4)]
    array: usize,
    /// Partition (`--partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Generic resources per task, e.g. gpu:1 (`--gres`).
    #[arg(long)]
    gres: Option<String>,
    /// Time limit per task, e.g. 04:00:00 (`--time`).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task (`--cpus-per-task`).
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// Memory per task, e.g. 16G (`--mem`).
    #[arg(long)]
    mem: Option<String>,
    /// Write the scripts and print the sbatch commands without submitting.
    #[arg(long)]
    dry_run: bool,
    /// The vidlrp binary the jobs run (default: this one; it must be reachable from the nodes).
    #[arg(long)]
    vidlrp: Option<PathBuf>,
    /// The data-set command and its options, after `--` (profile, sweep-steps, sweep-offsets,
    /// evaluate; with --out, without --shard).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// `s` quoted for a POSIX shell.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The value of `--out` in `argv`, and `argv` without it.
fn take_out(argv: &[String]) -> Result<(PathBuf, Vec<String>)> {
    let mut out = None;
    let mut rest = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--out" {
            out = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--out=") {
            out = Some(PathBuf::from(v));
        } else if a == "--shard" || a.starts_with("--shard=") {
            bail!("leave --shard out: each array task gets its own (--shard i/N)");
        } else if a == "--resume" {
            // Every task resumes anyway.
        } else {
            rest.push(a.clone());
        }
    }
    Ok((out.context("the command needs --out DIR")?, rest))
}

/// Whether shard directory `dir` holds finished outputs (every data-set command publishes
/// `records.json` with the rest of its outputs).
fn finished(dir: &Path) -> bool {
    dir.join("records.json").is_file()
}

/// Runs `sbatch --parsable ...`; the job id.
fn sbatch(args: &[String]) -> Result<String> {
    let o = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("cannot run sbatch: is Slurm installed here? (--dry-run writes the scripts without submitting)")?;
    if !o.status.success() {
        bail!(
            "sbatch {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id: {text:?}");
    }
    Ok(id)
}

pub fn run(a: Args) -> Result<crate::summary::Finished> {
    let Scheduler::Slurm(a) = a.scheduler;
    slurm(a)
}

fn slurm(a: SlurmArgs) -> Result<crate::summary::Finished> {
    let command = a.command[0].as_str();
    if !SHARDED.contains(&command) {
        bail!(
            "{command:?} is not a data-set command: submit one of {}",
            SHARDED.join(", ")
        );
    }
    if a.array == 0 {
        bail!("--array must be at least 1");
    }
    let (out, rest) = take_out(&a.command)?;
    // The command must parse as it will run: a mistake is a usage error now, not N failed tasks.
    let mut check = vec!["vidlrp".to_string()];
    check.extend(rest.iter().cloned());
    check.extend([
        "--shard".into(),
        format!("0/{}", a.array),
        "--out".into(),
        "x".into(),
    ]);
    crate::Cli::try_parse_from(&check).map_err(|e| anyhow::anyhow!("the command: {e}"))?;

    let cwd = std::env::current_dir()?;
    let out = if out.is_absolute() {
        out
    } else {
        cwd.join(out)
    };
    let slurm_dir = out.join("slurm");
    let shards_dir = out.join("shards");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("cannot create {}", slurm_dir.display()))?;
    std::fs::create_dir_all(&shards_dir)?;
    let vidlrp = match &a.vidlrp {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let submission = json!({"command": rest, "array": a.array});
    let jobs_file = slurm_dir.join("jobs.json");
    let previous: Option<Value> = std::fs::read_to_string(&jobs_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if let Some(p) = &previous {
        if p["submission"] != submission {
            bail!(
                "{} holds another submission ({}); use another --out",
                out.display(),
                jobs_file.display()
            );
        }
    }
    let todo: Vec<usize> = (0..a.array)
        .filter(|&i| !finished(&shards_dir.join(i.to_string())))
        .collect();

    let mut header = vec!["#!/bin/bash".to_string()];
    let mut directive = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            header.push(format!("#SBATCH --{k}={v}"));
        }
    };
    directive("partition", &a.partition);
    directive("gres", &a.gres);
    directive("time", &a.time);
    directive("cpus-per-task", &a.cpus_per_task.map(|c| c.to_string()));
    directive("mem", &a.mem);
    let args: String = rest.iter().map(|s| quote(s)).collect::<Vec<_>>().join(" ");
    let exe = quote(&vidlrp.display().to_string());
    let array_script = format!(
        "{}\n#SBATCH --job-name=vidlrp-{command}\n#SBATCH --chdir={}\n#SBATCH --output={}/task-%a.log\n\
         # Task i computes shard i/{n} into shards/i; a rerun resumes from its journal.\n\
         set -euo pipefail\n\
         exec {exe} {args} --shard \"$SLURM_ARRAY_TASK_ID/{n}\" --out {}/\"$SLURM_ARRAY_TASK_ID\" --resume\n",
        header.join("\n"),
        quote(&cwd.display().to_string()),
        quote(&slurm_dir.display().to_string()),
        quote(&shards_dir.display().to_string()),
        n = a.array,
    );
    let shard_list: String = (0..a.array)
        .map(|i| quote(&shards_dir.join(i.to_string()).display().to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let merge_script = format!(
        "#!/bin/bash\n#SBATCH --job-name=vidlrp-merge\n#SBATCH --chdir={}\n#SBATCH --output={}/merge.log\n\
         {}\n\
         # Runs after every array task succeeded (afterok): all {n} shards into the output.\n\
         set -euo pipefail\n\
         exec {exe} merge {shard_list} --out {}\n",
        quote(&cwd.display().to_string()),
        quote(&slurm_dir.display().to_string()),
        a.partition
            .as_ref()
            .map_or(String::new(), |p| format!("#SBATCH --partition={p}")),
        quote(&out.display().to_string()),
        n = a.array,
    );
    let array_path = slurm_dir.join("array.sh");
    let merge_path = slurm_dir.join("merge.sh");
    for (path, text) in [(&array_path, &array_script), (&merge_path, &merge_script)] {
        vidlrp_io::atomic_write(path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
    }
    let indices = todo
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let array_args = vec![
        format!("--array={indices}"),
        array_path.display().to_string(),
    ];
    if a.dry_run {
        eprintln!(
            "submit: wrote {} and {}; not submitted (--dry-run)",
            array_path.display(),
            merge_path.display()
        );
        return Ok(crate::summary::Finished::summary(json!({
            "array_script": array_path, "merge_script": merge_path, "shards_to_run": todo,
            "sbatch": [format!("sbatch --parsable {}", array_args.join(" ")),
                       format!("sbatch --parsable --dependency=afterok:<array job> {}", merge_path.display())],
        })));
    }
    // A merge left pending by a failed task of an earlier submission is replaced.
    if let Some(old) = previous.as_ref().and_then(|p| p["merge_job"].as_str()) {
        let _ = Command::new("scancel").arg(old).status();
    }
    if todo.is_empty() {
        eprintln!("submit: every shard has its outputs; submitting the merge only");
    }
    let array_job = if todo.is_empty() {
        None
    } else {
        Some(sbatch(&array_args)?)
    };
    let mut merge_args = Vec::new();
    if let Some(id) = &array_job {
        merge_args.push(format!("--dependency=afterok:{id}"));
    }
    merge_args.push(merge_path.display().to_string());
    let merge_job = sbatch(&merge_args)?;
    let record = json!({"submission": submission, "array_job": array_job, "merge_job": merge_job,
                        "shards_submitted": todo});
    let text = serde_json::to_string_pretty(&record)?;
    vidlrp_io::atomic_write(&jobs_file, |w| {
        std::io::Write::write_all(w, text.as_bytes())
    })?;
    let ids = array_job
        .iter()
        .chain(std::iter::once(&merge_job))
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    eprintln!(
        "submit: array job {} (shards {indices}), merge job {merge_job} after it\n  \
         follow: squeue -j {ids}   (a failed task leaves the merge pending: \
         DependencyNeverSatisfied)\n  \
         logs:   {}/task-*.log, {}/merge.log\n  \
         results: {} when the merge job has run",
        array_job.as_deref().unwrap_or("-"),
        slurm_dir.display(),
        slurm_dir.display(),
        out.display()
    );
    Ok(crate::summary::Finished::summary(
        json!({"array_job": array_job, "merge_job": merge_job, "shards": todo,
                        "out": out, "follow": format!("squeue -j {ids}")}),
    ))
}
