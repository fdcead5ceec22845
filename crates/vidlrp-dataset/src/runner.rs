//! [`run`]: one snippet per video and condition, explained on any backend.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use vidlrp_c3d::Pool5;
use vidlrp_core::{Backend, Composite, HostTensor, PresetOptions, Sequential, Target};
use vidlrp_snippet::{Preprocess, ShortPolicy, SnippetError, SnippetSpec};
use vidlrp_stats::{Accumulator, Observation};

use crate::{
    Condition, DatasetError, Item, Manifest, Network, Outcome, Records, Result, RunConfig, Shard,
    Status, RECORDS_FORMAT,
};

/// The options of a data-set run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The videos.
    pub manifest: Manifest,
    /// The weight file: any network [`vidlrp_model::load`] reads (C3D, video ResNets).
    pub weights: PathBuf,
    /// Preprocessing preset (and the z^B bounds of DTD).
    pub preset: Preprocess,
    /// C3D's pool5 variant; `None`: the weights' origin's ([`vidlrp_c3d::Origin::pool5`]).
    /// Must be `None` for other networks.
    pub pool5: Option<Pool5>,
    /// Frames per snippet.
    pub length: usize,
    /// What to do with videos too short for a snippet.
    pub short: ShortPolicy,
    /// The part of the manifest this run takes.
    pub shard: Shard,
    /// Bootstrap resamples of the summaries (recorded with the options).
    pub bootstrap: usize,
    /// Seed of the bootstrap and of the DTD-u weights.
    pub seed: u64,
    /// Where to journal finished videos ([`crate::Journal`]), if anywhere.
    pub journal: Option<PathBuf>,
    /// Continue the journal of an interrupted run of the same options instead of starting over.
    pub resume: bool,
    /// Snippets of one video explained together (one batch per network and list of methods;
    /// 1: one at a time; [`crate::BatchSize::Auto`]: from the network's size). Outcomes do not
    /// depend on it; shares only by float rounding (a batch changes the GEMMs' blocking: 1e-9
    /// on the reproduction's model). It pays where the backend gains from larger batches (on
    /// the CPU: small models), at the cost of memory; records of runs with different batches
    /// are not byte-identical.
    pub batch: crate::BatchSize,
    /// The most bytes of network inputs kept per chunk of videos when the conditions explain
    /// two networks (DTD-u and any other method): only one network is resident at a time, a
    /// chunk of videos is explained by one, then by the other
    /// ([`RunOptions::DEFAULT_CHUNK_BYTES`]). Results do not depend on it; a larger chunk
    /// swaps networks less often, an interrupted run recomputes at most one chunk.
    pub chunk_bytes: usize,
}

impl RunOptions {
    /// 64 MiB: 26 full-size C3D snippets (2.4 MB each), e.g. 3 videos of 7 step sizes. One
    /// network swap per chunk costs a fraction of a second next to minutes of explaining.
    pub const DEFAULT_CHUNK_BYTES: usize = 64 << 20;
}

/// The preset's name, and with a per-voxel mean the SHA-256 of its values (so shards with
/// different means do not merge).
fn preset_id(p: &Preprocess) -> String {
    use sha2::Digest;
    match &p.voxel_mean {
        None => p.to_string(),
        Some(m) => {
            let mut h = sha2::Sha256::new();
            for v in m.data() {
                h.update(v.to_le_bytes());
            }
            let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            format!("{}+voxel-mean:{}", p.name, &hex[..16])
        }
    }
}

/// Where a run stands, for progress bars.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Snippets done (explained, skipped or failed).
    pub done: usize,
    /// Snippets in this shard.
    pub total: usize,
    /// The video being worked on.
    pub item: &'a Item,
    /// Videos taken from the journal of an interrupted run so far (not computed again).
    pub resumed: usize,
    /// Seconds spent explaining so far (the network's work, on the backend).
    pub explain_s: f64,
    /// Seconds the network waited for frames so far (decoding runs ahead on its own thread;
    /// this is the part it did not hide).
    pub wait_s: f64,
}

/// Why one video gave no observation under one condition.
#[derive(Clone)]
enum Miss {
    Skipped(String),
    Failed(String),
}

/// An error that makes the video count as failed.
fn failed(e: impl Into<DatasetError>) -> Miss {
    Miss::Failed(e.into().to_string())
}

/// Runs every condition on every video of the options' shard, on backend `be`, calling
/// `progress` after each snippet. A video that cannot be read or explained is recorded as
/// failed (too short: skipped) and the run goes on.
///
/// **Errors** before any video is read if the conditions are empty or share a key, the weights
/// cannot be read or do not fit the preset's input, or a method does not fit the network.
pub fn run<B: Backend>(
    be: &B,
    command: &str,
    opts: &RunOptions,
    conditions: Vec<Condition>,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Records> {
    check_conditions(&conditions, opts)?;
    let [h, w] = opts.preset.input_size();
    let input = [3, opts.length, h, w];
    let weights_sha256 = crate::sha256_file(&opts.weights)?;
    let mut model = vidlrp_model::load(&opts.weights, opts.pool5)?;
    let net = model.take_network(be, input)?;
    let composites = composites(&net, &conditions, opts)?;
    let batch = opts.batch.resolve(&net, input)?;
    let config = run_config(opts, weights_sha256, &model);
    let (mut journal, mut resumed) = open_journal(command, opts, batch, &config, &conditions)?;
    let mine: Vec<&Item> = opts
        .manifest
        .items
        .iter()
        .filter(|it| opts.shard.contains(it.index))
        .collect();
    let total = mine.len() * conditions.len();
    let mut accumulators = empty_accumulators(&conditions);
    let mut outcomes = Vec::with_capacity(total);
    let plan = Plan::new(&conditions);
    let networks = plan.networks();
    let chunk_videos = plan.videos_per_chunk(input, opts.chunk_bytes);
    let mut resident = Some((Network::Trained, net));
    let builder = NetworkBuilder {
        be,
        opts,
        model: &model,
        weights_sha256: &config.weights_sha256,
        input,
    };
    // The videos to compute, in item order: a reader thread decodes and preprocesses them one
    // video ahead of the network (`sync_channel(1)`: at most two videos' inputs wait).
    let todo: Vec<&Item> = mine
        .iter()
        .copied()
        .filter(|it| !resumed.contains_key(&it.index))
        .collect();
    let chunks = chunk_items(&mine, &resumed, chunk_videos);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Inputs>(1);
    let mut tally = Tally::default();
    std::thread::scope(|scope| -> Result<()> {
        let points = &plan.points;
        scope.spawn(move || {
            yield_to_compute();
            for item in todo {
                // The receiver hangs up when the run stops early: then stop reading too.
                if tx.send(read_contained(item, points, opts)).is_err() {
                    break;
                }
            }
        });
        for chunk in chunks {
            let computed: Vec<&Item> = chunk
                .iter()
                .copied()
                .filter(|it| !resumed.contains_key(&it.index))
                .collect();
            let mut inputs: Vec<Inputs> = Vec::with_capacity(computed.len());
            let mut results: Vec<Vec<Option<Observed>>> = computed
                .iter()
                .map(|_| conditions.iter().map(|_| None).collect())
                .collect();
            // The resident network first: one swap per chunk at most.
            let mut order = networks.clone();
            if let Some((network, _)) = &resident {
                order.sort_by_key(|m| m != network);
            }
            for (phase, &network) in order.iter().enumerate() {
                if computed.is_empty() {
                    break;
                }
                if resident.as_ref().map(|r| r.0) != Some(network) {
                    // Drop one network before building the other.
                    resident = None;
                    resident = Some((network, builder.build(network)?));
                }
                let net = &resident.as_ref().expect("built above").1;
                for (v, &item) in computed.iter().enumerate() {
                    if phase == 0 {
                        inputs.push(receive(&rx, item, &mut tally)?);
                    }
                    let mut on_group = |d: usize, s: f64| {
                        tally.done += d;
                        tally.explain_s += s;
                        progress(tally.at(total, item));
                    };
                    let observed = crate::contain_panic(|| {
                        observe_groups(
                            be,
                            item,
                            &conditions,
                            &plan,
                            (network, net),
                            &composites,
                            &inputs[v],
                            batch,
                            &mut results[v],
                            &mut on_group,
                        );
                    });
                    if let Err(message) = observed {
                        on_group(
                            fail_unfinished(&mut results[v], &plan, network, &message),
                            0.0,
                        );
                    }
                }
            }
            let mut results = results.into_iter();
            for item in chunk {
                let record = match resumed.remove(&item.index) {
                    Some(r) => {
                        check_resumed(&r, &conditions, item)?;
                        tally.from_journal += 1;
                        tally.done += conditions.len();
                        r
                    }
                    None => {
                        let observed = results.next().expect("one result list per computed item");
                        let r = item_record(item, &conditions, observed);
                        if let Some(j) = journal.as_mut() {
                            j.append(&r)?;
                        }
                        r
                    }
                };
                progress(tally.at(total, item));
                accumulate(&mut accumulators, &mut outcomes, record)?;
            }
        }
        Ok(())
    })?;
    Ok(Records {
        format: RECORDS_FORMAT,
        command: command.into(),
        config,
        conditions,
        manifest_items: opts.manifest.items.len(),
        shards: vec![opts.shard],
        accumulators,
        outcomes,
    })
}

/// One empty accumulator per condition, by key.
fn empty_accumulators(conditions: &[Condition]) -> BTreeMap<String, Accumulator> {
    conditions
        .iter()
        .map(|c| (c.key.clone(), Accumulator::default()))
        .collect()
}

/// **Errors** if there are no conditions, two share a key, or snippets would have no frame.
fn check_conditions(conditions: &[Condition], opts: &RunOptions) -> Result<()> {
    if conditions.is_empty() {
        return Err(DatasetError::Empty(
            "nothing to measure: the list of conditions is empty".into(),
        ));
    }
    let keys: BTreeSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    if keys.len() != conditions.len() {
        return Err(DatasetError::Records("two conditions share a key".into()));
    }
    if opts.length == 0 {
        return Err(DatasetError::Empty(
            "snippets need at least one frame".into(),
        ));
    }
    Ok(())
}

/// Each condition's composite (method presets with the preset's z^B bounds), keyed by the
/// condition's key.
///
/// **Errors** if a method's rules do not fit `net` (DTD-u's network has the trained one's
/// architecture: the same rules fit both).
fn composites<B: Backend>(
    net: &Sequential<B>,
    conditions: &[Condition],
    opts: &RunOptions,
) -> Result<BTreeMap<String, Composite>> {
    let preset_options = PresetOptions {
        low: opts.preset.low(),
        high: opts.preset.high(),
        ..PresetOptions::default()
    };
    let mut composites = BTreeMap::new();
    for c in conditions {
        let method = c.method.method().ok_or_else(|| {
            DatasetError::Records(format!(
                "{}: {} ranks regions for the perturbation analysis; it has no relevance to \
                 analyse here",
                c.key, c.method
            ))
        })?;
        let composite = Composite::preset(method, &preset_options)?;
        net.rules(&composite)?;
        composites.insert(c.key.clone(), composite);
    }
    Ok(composites)
}

/// The run's options as recorded with its results.
fn run_config(opts: &RunOptions, weights_sha256: String, model: &vidlrp_model::Model) -> RunConfig {
    RunConfig {
        manifest: opts.manifest.path.clone(),
        manifest_sha256: opts.manifest.sha256.clone(),
        weights: opts.weights.clone(),
        weights_sha256,
        preset: preset_id(&opts.preset),
        // C3D's pool5 variant; "none" for networks without one (the weights' hash tells them
        // apart).
        pool5: model.pool5().map_or("none".into(), |p| p.to_string()),
        origin: model.origin(),
        length: opts.length,
        short: match opts.short {
            ShortPolicy::Skip => "skip".into(),
            ShortPolicy::Clamp => "clamp".into(),
        },
        bootstrap: opts.bootstrap,
        seed: opts.seed,
    }
}

/// The journal of the options (if any) and, resuming, the records it already holds by item.
fn open_journal(
    command: &str,
    opts: &RunOptions,
    batch: usize,
    config: &RunConfig,
    conditions: &[Condition],
) -> Result<(Option<crate::Journal>, BTreeMap<usize, crate::ItemRecord>)> {
    let Some(path) = &opts.journal else {
        return Ok((None, BTreeMap::new()));
    };
    // The batch size is part of the run: it changes shares by float rounding, and a resumed
    // run must give the bytes of an uninterrupted one.
    #[derive(serde::Serialize)]
    struct JournalRun<'a> {
        command: &'a str,
        config: RunConfig,
        conditions: &'a [Condition],
        shard: Shard,
        batch: usize,
    }
    let run = JournalRun {
        command,
        config: config.comparable(),
        conditions,
        shard: opts.shard,
        batch,
    };
    let (journal, done) = crate::Journal::open::<crate::ItemRecord>(path, &run, opts.resume)?;
    let done = done.into_iter().map(|r| (r.item, r)).collect();
    Ok((Some(journal), done))
}

/// Consecutive items with at most `per_chunk` to compute each (items from the journal ride
/// along, so records stay in item order).
fn chunk_items<'a>(
    items: &[&'a Item],
    resumed: &BTreeMap<usize, crate::ItemRecord>,
    per_chunk: usize,
) -> Vec<Vec<&'a Item>> {
    let mut chunks: Vec<Vec<&Item>> = vec![Vec::new()];
    let mut computing = 0;
    for &item in items {
        if !resumed.contains_key(&item.index) {
            if computing == per_chunk {
                chunks.push(Vec::new());
                computing = 0;
            }
            computing += 1;
        }
        chunks.last_mut().expect("non-empty").push(item);
    }
    chunks
}

/// Builds the networks a run swaps in: the trained one from its weight file (checked to be
/// unchanged since the run began), the untrained one from the run's seed (initialised as the
/// architecture's own code does, [`vidlrp_model::Model::untrained`]).
struct NetworkBuilder<'a, B: Backend> {
    be: &'a B,
    opts: &'a RunOptions,
    /// The architecture (its tensors taken for the first network).
    model: &'a vidlrp_model::Model,
    weights_sha256: &'a str,
    input: [usize; 4],
}

impl<B: Backend> NetworkBuilder<'_, B> {
    /// **Errors** if the weight file changed during the run or cannot be read.
    fn build(&self, network: Network) -> Result<Sequential<B>> {
        let opts = self.opts;
        let weights = match network {
            Network::Untrained => self.model.untrained(opts.seed),
            Network::Trained => {
                let now = crate::sha256_file(&opts.weights)?;
                if now != self.weights_sha256 {
                    return Err(DatasetError::Records(format!(
                        "{} changed during the run (SHA-256 {} at the start, {now} \
                         now): the videos left would be explained by other weights",
                        opts.weights.display(),
                        self.weights_sha256
                    )));
                }
                vidlrp_model::load(&opts.weights, opts.pool5)?.tensors
            }
        };
        Ok(self.model.build_with(self.be, weights, self.input)?)
    }
}

/// The counts and times a run reports in its [`Progress`].
#[derive(Debug, Default)]
struct Tally {
    done: usize,
    from_journal: usize,
    explain_s: f64,
    wait_s: f64,
}

impl Tally {
    fn at<'a>(&self, total: usize, item: &'a Item) -> Progress<'a> {
        Progress {
            done: self.done,
            total,
            item,
            resumed: self.from_journal,
            explain_s: self.explain_s,
            wait_s: self.wait_s,
        }
    }
}

/// The reader thread's inputs of `item` (the next it sends), the wait added to `tally`.
fn receive(
    rx: &std::sync::mpsc::Receiver<Inputs>,
    item: &Item,
    tally: &mut Tally,
) -> Result<Inputs> {
    let waited = std::time::Instant::now();
    let read = rx
        .recv()
        .map_err(|_| DatasetError::Records("the video reader thread stopped".into()))?;
    tally.wait_s += waited.elapsed().as_secs_f64();
    debug_assert_eq!(read.item, item.index);
    Ok(read)
}

/// **Errors** if the journal's record of `item` does not hold the run's conditions, in order.
fn check_resumed(r: &crate::ItemRecord, conditions: &[Condition], item: &Item) -> Result<()> {
    let keys: Vec<&str> = r.outcomes.iter().map(|o| o.condition.as_str()).collect();
    let expected: Vec<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    if keys != expected {
        return Err(DatasetError::Records(format!(
            "the journal's record of item {} does not hold the run's conditions",
            item.index
        )));
    }
    Ok(())
}

/// Adds one video's record to the run's accumulators and outcomes.
///
/// **Errors** if it names a condition the run does not have.
fn accumulate(
    accumulators: &mut BTreeMap<String, Accumulator>,
    outcomes: &mut Vec<Outcome>,
    record: crate::ItemRecord,
) -> Result<()> {
    for (key, o) in record.observations {
        accumulators
            .get_mut(&key)
            .ok_or_else(|| {
                DatasetError::Records(format!("the journal names an unknown condition {key}"))
            })?
            .push(o);
    }
    outcomes.extend(record.outcomes);
    Ok(())
}

/// Lowers the calling thread's scheduling priority to the lowest (Linux: nice 19 for this
/// thread only), so a reader thread decodes in the time the network's threads leave and does
/// not preempt them (a preempted worker holds up every join of a parallel layer). Elsewhere,
/// or if the call fails, the priority stays as it is.
fn yield_to_compute() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read their integer arguments; on Linux,
    // PRIO_PROCESS with a thread id sets that thread's nice value.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// One condition's result on one video.
type Observed = std::result::Result<Observation, Miss>;

/// How a run's conditions share work on each video: the distinct snippets `(offset, step)`
/// to read, and the groups of conditions that explain the same network on the same snippet
/// (one forward pass each, [`Sequential::explain_each`]).
struct Plan {
    /// Distinct `(offset, step)` in order of first use.
    points: Vec<(usize, usize)>,
    /// Per group: the index into `points`, the network, and the conditions (in run order).
    groups: Vec<(usize, Network, Vec<usize>)>,
}

impl Plan {
    fn new(conditions: &[Condition]) -> Self {
        let mut points: Vec<(usize, usize)> = Vec::new();
        let mut groups: Vec<(usize, Network, Vec<usize>)> = Vec::new();
        for (i, c) in conditions.iter().enumerate() {
            let p = match points.iter().position(|&p| p == (c.offset, c.step)) {
                Some(p) => p,
                None => {
                    points.push((c.offset, c.step));
                    points.len() - 1
                }
            };
            let m = c.method.network();
            match groups.iter_mut().find(|g| g.0 == p && g.1 == m) {
                Some(g) => g.2.push(i),
                None => groups.push((p, m, vec![i])),
            }
        }
        Self { points, groups }
    }

    /// Videos per chunk: with two networks (DTD-u's conditions) only one is resident at a
    /// time, a chunk of videos is explained by one network, then by the other, its inputs
    /// (at most `chunk_bytes` of them) kept in between; with one network, 1.
    fn videos_per_chunk(&self, input: [usize; 4], chunk_bytes: usize) -> usize {
        if self.networks().len() > 1 {
            let input_bytes = self.points.len() * input.iter().product::<usize>() * 4;
            (chunk_bytes / input_bytes.max(1)).max(1)
        } else {
            1
        }
    }

    /// The networks the groups explain, the trained one first.
    fn networks(&self) -> Vec<Network> {
        let set: BTreeSet<Network> = self.groups.iter().map(|g| g.1).collect();
        set.into_iter().collect()
    }
}

/// One video's network inputs, one per [`Plan::points`] entry (read on the reader thread).
struct Inputs {
    item: usize,
    snippets: Vec<std::result::Result<HostTensor, Miss>>,
}

/// [`read_inputs`] inside the panic boundary: a panic fails every snippet of the video with
/// its message.
fn read_contained(item: &Item, points: &[(usize, usize)], opts: &RunOptions) -> Inputs {
    crate::contain_panic(|| read_inputs(item, points, opts)).unwrap_or_else(|message| Inputs {
        item: item.index,
        snippets: points
            .iter()
            .map(|_| Err(Miss::Failed(message.clone())))
            .collect(),
    })
}

/// After a panic while `network` explained one video: each of its conditions the video did
/// not finish fails with `message`. Returns how many.
fn fail_unfinished(
    results: &mut [Option<Observed>],
    plan: &Plan,
    network: Network,
    message: &str,
) -> usize {
    let mut failed = 0;
    for (_, model, members) in &plan.groups {
        for &i in members.iter().filter(|_| *model == network) {
            if results[i].is_none() {
                results[i] = Some(Err(Miss::Failed(message.to_string())));
                failed += 1;
            }
        }
    }
    failed
}

/// Opens `item`, reads every snippet the plan needs in one pass, and preprocesses them into
/// `[1, 3, T, H, W]` inputs.
fn read_inputs(item: &Item, points: &[(usize, usize)], opts: &RunOptions) -> Inputs {
    let snippets = match vidlrp_snippet::open(&item.resolved)
        .and_then(|src| prefetch(src, item, points, opts))
    {
        Err(e) => points
            .iter()
            .map(|_| Err(Miss::Failed(e.to_string())))
            .collect(),
        Ok(mut source) => points
            .iter()
            .map(|&(offset, step)| {
                let spec = SnippetSpec {
                    length: opts.length,
                    offset,
                    step,
                };
                match vidlrp_snippet::load_snippet(source.as_mut(), &spec, opts.short, &opts.preset)
                {
                    Err(e @ SnippetError::TooShort { .. }) => Err(Miss::Skipped(e.to_string())),
                    Err(e) => Err(Miss::Failed(e.to_string())),
                    Ok(s) => Ok(s.into_batched_input()),
                }
            })
            .collect(),
    };
    Inputs {
        item: item.index,
        snippets,
    }
}

/// The conditions of one video that `network` (which one, and its layers) explains,
/// their results written into `results` (one slot per condition). `progress(d, s)` is called
/// after each group of conditions: `d` more conditions done, `s` seconds of explaining.
#[allow(clippy::too_many_arguments)]
fn observe_groups<B: Backend>(
    be: &B,
    item: &Item,
    conditions: &[Condition],
    plan: &Plan,
    network: (Network, &Sequential<B>),
    composites: &BTreeMap<String, Composite>,
    inputs: &Inputs,
    batch: usize,
    results: &mut [Option<Observed>],
    progress: &mut dyn FnMut(usize, f64),
) {
    // Groups whose snippet could not be read get its miss; the others are explained in
    // batches of up to `batch` snippets, one batch per list of methods.
    // methods -> the groups explained with them.
    let mut buckets: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (g, (point, model, members)) in plan.groups.iter().enumerate() {
        if *model != network.0 {
            continue;
        }
        if let Err(m) = &inputs.snippets[*point] {
            for &i in members {
                results[i] = Some(Err(m.clone()));
            }
            progress(members.len(), 0.0);
            continue;
        }
        let signature: Vec<String> = members
            .iter()
            .map(|&i| conditions[i].method.to_string())
            .collect();
        match buckets.iter_mut().find(|b| b.0 == signature) {
            Some(b) => b.1.push(g),
            None => buckets.push((signature, vec![g])),
        }
    }
    for (_, groups) in &buckets {
        for chunk in groups.chunks(batch.max(1)) {
            let start = std::time::Instant::now();
            let members = &plan.groups[chunk[0]].2;
            let methods: Vec<&Composite> = members
                .iter()
                .map(|&i| &composites[&conditions[i].key])
                .collect();
            let xs: Vec<&HostTensor> = chunk
                .iter()
                .map(|&g| match &inputs.snippets[plan.groups[g].0] {
                    Ok(x) => x,
                    Err(_) => unreachable!("groups without input were handled above"),
                })
                .collect();
            let explained = explain_batch(be, network.1, &xs, &methods, item);
            let mut d = 0;
            for (&g, per_group) in chunk.iter().zip(explained) {
                for (&i, r) in plan.groups[g].2.iter().zip(per_group) {
                    results[i] = Some(r);
                }
                d += plan.groups[g].2.len();
            }
            progress(d, start.elapsed().as_secs_f64());
        }
    }
}

/// One video's record: every condition's outcome and observation, in condition order.
fn item_record(
    item: &Item,
    conditions: &[Condition],
    results: Vec<Option<Observed>>,
) -> crate::ItemRecord {
    let mut record = crate::ItemRecord {
        item: item.index,
        outcomes: Vec::with_capacity(conditions.len()),
        observations: Vec::new(),
    };
    for (c, result) in conditions.iter().zip(results) {
        let result = result.expect("every condition belongs to a group");
        let (status, reason) = match result {
            Ok(o) => {
                record.observations.push((c.key.clone(), o));
                (Status::Ok, None)
            }
            Err(Miss::Skipped(r)) => (Status::Skipped, Some(r)),
            Err(Miss::Failed(r)) => (Status::Failed, Some(r)),
        };
        record.outcomes.push(Outcome {
            item: item.index,
            path: item.path.clone(),
            condition: c.key.clone(),
            status,
            reason,
        });
    }
    record
}

/// The most frame bytes read ahead per video (beyond it, each snippet decodes its own).
const PREFETCH_BYTES: usize = 1 << 30;

/// `src` with the frames of every snippet read ahead in one pass (each video is decoded
/// once, not once per condition; the frames are the same). A video that cannot be read ahead
/// is opened again and read per snippet, so each condition reports its own error as before.
fn prefetch(
    src: Box<dyn vidlrp_snippet::FrameSource>,
    item: &Item,
    points: &[(usize, usize)],
    opts: &RunOptions,
) -> vidlrp_snippet::Result<Box<dyn vidlrp_snippet::FrameSource>> {
    let n = src.info().frames;
    let wanted: Vec<usize> = points
        .iter()
        .filter_map(|&(offset, step)| {
            SnippetSpec {
                length: opts.length,
                offset,
                step,
            }
            .indices(n, opts.short)
            .ok()
        })
        .flatten()
        .collect();
    match vidlrp_snippet::Prefetched::new(src, &wanted, PREFETCH_BYTES) {
        Ok(p) => Ok(Box::new(p)),
        Err(_) => vidlrp_snippet::open(&item.resolved),
    }
}

/// One snippet explained by every composite of a group (one shared forward pass): each
/// composite's share vector and, if labelled, top-1/top-5 hits. If the shared call fails
/// (one method refusing a non-positive score, say), each composite is explained alone, so
/// each condition gets its own outcome, as if it had run alone.
fn explain_group<B: Backend>(
    be: &B,
    model: &Sequential<B>,
    x: &HostTensor,
    group: &[&Composite],
    item: &Item,
) -> Vec<std::result::Result<Observation, Miss>> {
    let x = match be.upload(x) {
        Ok(x) => x,
        Err(e) => return group.iter().map(|_| Err(failed(e.clone()))).collect(),
    };
    match model.explain_each(be, &x, &Target::TopOne, group) {
        Ok(es) => es.iter().map(|e| observation(e, item)).collect(),
        Err(_) if group.len() > 1 => group
            .iter()
            .map(|c| {
                model
                    .explain(be, &x, &Target::TopOne, c)
                    .map_err(failed)
                    .and_then(|e| observation(&e, item))
            })
            .collect(),
        Err(e) => vec![Err(failed(e))],
    }
}

/// Snippets `xs` (each `[1, C, T, H, W]`) explained by every composite of `group` as one
/// batch with one forward pass: per snippet, per composite, its observation. One snippet is
/// [`explain_group`]; if the batched call fails, each snippet is explained on its own, so a
/// refusal stays with the snippet and method it concerns.
fn explain_batch<B: Backend>(
    be: &B,
    model: &Sequential<B>,
    xs: &[&HostTensor],
    group: &[&Composite],
    item: &Item,
) -> Vec<Vec<std::result::Result<Observation, Miss>>> {
    let alone = || -> Vec<Vec<std::result::Result<Observation, Miss>>> {
        xs.iter()
            .map(|x| explain_group(be, model, x, group, item))
            .collect()
    };
    if xs.len() == 1 {
        return alone();
    }
    let one = xs[0].shape()[1..].to_vec();
    // `[N, 1, C, T, H, W]` stacked, then the unit axis dropped.
    let batched = HostTensor::stack(xs)
        .and_then(|x| x.reshape([&[xs.len()], &one[..]].concat()))
        .and_then(|x| be.upload_owned(x))
        .and_then(|x| model.explain_each(be, &x, &Target::TopOne, group));
    let Ok(es) = batched else {
        return alone();
    };
    let n = xs[0].len();
    let shape = [&[1], &one[..]].concat();
    (0..xs.len())
        .map(|s| {
            es.iter()
                .map(|e| {
                    let k = e.logits.shape()[1];
                    sample_observation(
                        &e.relevance.data()[s * n..(s + 1) * n],
                        &shape,
                        &e.logits.data()[s * k..(s + 1) * k],
                        item,
                    )
                })
                .collect()
        })
        .collect()
}

/// One sample's share vector and, if the item is labelled, its top-1/top-5 hits.
fn sample_observation(
    relevance: &[f32],
    shape: &[usize],
    logits: &[f32],
    item: &Item,
) -> std::result::Result<Observation, Miss> {
    let shares = vidlrp_stats::frame_shares(relevance, shape).map_err(failed)?;
    // Accuracy is the explained model's (for dtd-u: the untrained one's).
    let hit = |k| item.label.map(|l| vidlrp_stats::top_k_hit(logits, l, k));
    Ok(Observation {
        item: item.index,
        shares,
        top1: hit(1),
        top5: hit(5),
    })
}

/// An explanation's share vector and, if the item is labelled, its top-1/top-5 hits.
fn observation(
    e: &vidlrp_core::Explanation,
    item: &Item,
) -> std::result::Result<Observation, Miss> {
    let k = e.logits.shape()[1];
    sample_observation(
        e.relevance.data(),
        e.relevance.shape(),
        &e.logits.data()[..k],
        item,
    )
}
