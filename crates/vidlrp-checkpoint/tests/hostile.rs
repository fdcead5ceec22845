//! Structure-aware fuzzing of every weight-file reader under a memory budget (#30): pickle
//! opcode streams (in a PyTorch zip and in a legacy file), Caffe protobuf messages, `.npy`
//! headers in `.npz` zip directories (inflation included) and safetensors headers are
//! generated, read, and the peak of live bytes allocated while reading is checked against the
//! budget the crate documents: `BUDGET_FACTOR x file size + BUDGET_ALLOWANCE`, plus what
//! `.npz` arrays may inflate to ([`vidlrp_io::npz_inflation_limit`]). A read may succeed or
//! fail; it may not panic or exceed the budget. The hostile files of `fixtures/hostile` (a
//! corpus of the attacks found so far, written by its `generate.py`) are kept as regression
//! cases.
//!
//! The number of generated cases per generator is `VIDLRP_FUZZ_CASES` (default 64, a few
//! seconds); `cargo xtask fuzz` runs many more.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vidlrp_checkpoint::Format;

/// This test binary's allocator: the system's, with the live bytes of the thread that reads
/// counted while [`measure`] runs.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ON: Cell<bool> = const { Cell::new(false) };
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    /// A single request beyond this while counting fails at once (no test machine would
    /// survive it, and no budget allows it).
    const REFUSE: usize = 8 << 30;

    pub struct Counting;

    /// Adds `delta` to this thread's live bytes if counting; `false` refuses the request.
    fn note(delta: isize, request: usize) -> bool {
        ON.try_with(|on| {
            if !on.get() {
                return true;
            }
            if request > REFUSE {
                return false;
            }
            let live = LIVE.with(|l| {
                l.set(l.get() + delta);
                l.get()
            });
            PEAK.with(|p| p.set(p.get().max(live)));
            true
        })
        .unwrap_or(true)
    }

    // SAFETY: every call is forwarded to the system allocator; counting touches only
    // const-initialised thread-locals, never the memory handed out.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !note(layout.size() as isize, layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if !note(layout.size() as isize, layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            note(-(layout.size() as isize), 0);
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if !note(new_size as isize - layout.size() as isize, new_size) {
                return std::ptr::null_mut();
            }
            // SAFETY: the caller's contract, forwarded.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// `f()` and the peak of this thread's live bytes above where they were when it began.
    pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LIVE.with(|l| l.set(0));
        PEAK.with(|p| p.set(0));
        ON.with(|on| on.set(true));
        let r = f();
        ON.with(|on| on.set(false));
        (r, PEAK.with(Cell::get).max(0) as usize)
    }
}

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The budget's factor on the file size: the file read whole (1x), its values decoded to f32
/// (up to 4x for bytes), and one copy in flight.
const BUDGET_FACTOR: u64 = 8;
/// The budget's fixed allowance: parser state, buffers, error messages.
const BUDGET_ALLOWANCE: u64 = 16 << 20;
/// What the PyTorch pickle reader may copy out of its memo before it refuses a file as a memo
/// bomb (`pytorch-reader`: 64 MiB of strings and 10^6 object nodes), with room for its nodes.
const PICKLE_COPY_ALLOWANCE: u64 = 128 << 20;

/// The most a read of a file of `len` bytes and format `format` may hold at once.
fn budget(len: u64, format: Option<Format>) -> u64 {
    let extra = match format {
        Some(Format::Npz) => vidlrp_io::npz_inflation_limit(len),
        Some(Format::TorchZip | Format::TorchLegacy) => PICKLE_COPY_ALLOWANCE,
        _ => 0,
    };
    BUDGET_FACTOR * len + BUDGET_ALLOWANCE + extra
}

fn cases() -> u32 {
    std::env::var("VIDLRP_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64)
}

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("vidlrp-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Reads `bytes` as a weight file (and as a Caffe blob) under the budget; the outcome of
/// `read`, for the tests that expect one.
fn read_within_budget(name: &str, bytes: &[u8]) -> Result<(), String> {
    read_measured(name, bytes).0
}

/// [`read_within_budget`], with the largest peak of live bytes of the three readers.
fn read_measured(name: &str, bytes: &[u8]) -> (Result<(), String>, usize) {
    let p = scratch().join(format!("{name}-{:?}", std::thread::current().id()));
    std::fs::write(&p, bytes).unwrap();
    let limit = budget(bytes.len() as u64, vidlrp_checkpoint::detect(&p).ok());
    let (outcome, peak) = counting::measure(|| {
        vidlrp_checkpoint::read(&p)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let (_, blob_peak) = counting::measure(|| vidlrp_checkpoint::read_blob(&p).map(|_| ()));
    let (_, tensors_peak) = counting::measure(|| vidlrp_io::read_tensors(&p).map(|_| ()));
    std::fs::remove_file(&p).unwrap();
    for (reader, peak) in [
        ("read", peak),
        ("read_blob", blob_peak),
        ("read_tensors", tensors_peak),
    ] {
        assert!(
            peak as u64 <= limit,
            "{name}: {reader} held {peak} bytes at once for a file of {} bytes (budget {limit})",
            bytes.len()
        );
    }
    (outcome, peak.max(blob_peak).max(tensors_peak))
}

// ---------------------------------------------------------------- pickle opcode streams

/// One pickle instruction (protocol 2-4), with its argument.
#[derive(Debug, Clone)]
enum Op {
    Raw(u8),
    Unicode(usize),
    ShortUnicode(u8),
    Int(i32),
    Long(Vec<u8>),
    Float(f64),
    Global(usize),
    Put(u32),
    LongPut(u32),
    Get(u32),
    LongGet(u32),
    Persid,
    Frame(u64),
    /// The same instruction many times (the memo and stack amplification attacks).
    Many(u16, Box<Op>),
}

/// Argument-free opcodes: MARK, STOP, POP, DUP, NONE, EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE,
/// TUPLE, TUPLE1-3, SETITEM, SETITEMS, APPEND, APPENDS, REDUCE, BUILD, NEWTRUE, NEWFALSE,
/// MEMOIZE, PROTO 2's byte.
const BARE: &[u8] = b"(.02N}])t\x85\x86\x87sueaRb\x88\x89\x94";

/// Globals a checkpoint names (and some it must not).
const GLOBALS: &[(&str, &str)] = &[
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("os", "system"),
    ("torch.nn.modules.conv", "Conv3d"),
];

fn op() -> impl Strategy<Value = Op> {
    let leaf = prop_oneof![
        4 => proptest::sample::select(BARE).prop_map(Op::Raw),
        1 => (0usize..5000).prop_map(Op::Unicode),
        2 => any::<u8>().prop_map(Op::ShortUnicode),
        2 => any::<i32>().prop_map(Op::Int),
        1 => proptest::collection::vec(any::<u8>(), 0..12).prop_map(Op::Long),
        1 => any::<f64>().prop_map(Op::Float),
        2 => (0..GLOBALS.len()).prop_map(Op::Global),
        1 => (0u32..300).prop_map(Op::Put),
        1 => prop_oneof![0u32..300, any::<u32>()].prop_map(Op::LongPut),
        2 => (0u32..300).prop_map(Op::Get),
        1 => prop_oneof![0u32..300, any::<u32>()].prop_map(Op::LongGet),
        1 => Just(Op::Persid),
        1 => prop_oneof![0u64..4096, any::<u64>()].prop_map(Op::Frame),
    ];
    leaf.prop_recursive(1, 4, 1, |inner| {
        (1u16..3000, inner).prop_map(|(n, op)| Op::Many(n, Box::new(op)))
    })
}

fn encode(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Raw(b) => out.push(*b),
        Op::Unicode(n) => {
            out.push(b'X');
            out.extend_from_slice(&(*n as u32).to_le_bytes());
            out.extend(std::iter::repeat_n(b'a', *n));
        }
        Op::ShortUnicode(n) => {
            out.extend_from_slice(&[0x8c, *n]);
            out.extend(std::iter::repeat_n(b'w', usize::from(*n)));
        }
        Op::Int(i) => {
            out.push(b'J');
            out.extend_from_slice(&i.to_le_bytes());
        }
        Op::Long(b) => {
            out.extend_from_slice(&[0x8a, b.len() as u8]);
            out.extend_from_slice(b);
        }
        Op::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Op::Global(i) => {
            let (m, n) = GLOBALS[*i];
            out.push(b'c');
            out.extend_from_slice(format!("{m}\n{n}\n").as_bytes());
        }
        Op::Put(i) => out.extend_from_slice(&[b'q', *i as u8]),
        Op::LongPut(i) => {
            out.push(b'r');
            out.extend_from_slice(&i.to_le_bytes());
        }
        Op::Get(i) => out.extend_from_slice(&[b'h', *i as u8]),
        Op::LongGet(i) => {
            out.push(b'j');
            out.extend_from_slice(&i.to_le_bytes());
        }
        Op::Persid => out.push(b'Q'),
        Op::Frame(n) => {
            out.push(0x95);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Op::Many(n, op) => {
            for _ in 0..*n {
                encode(op, out);
            }
        }
    }
}

/// `PROTO 2`, the instructions, and (if `stop`) `STOP`.
fn pickle(ops: &[Op], stop: bool) -> Vec<u8> {
    let mut out = vec![0x80, 2];
    for op in ops {
        encode(op, &mut out);
    }
    if stop {
        out.push(b'.');
    }
    out
}

/// A PyTorch zip checkpoint: `archive/data.pkl`, `archive/version` and one storage.
fn torch_zip(data_pkl: &[u8], storage: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in [
        ("archive/data.pkl", data_pkl),
        ("archive/version", b"3\n".as_slice()),
        ("archive/data/0", storage),
    ] {
        zip.start_file(name, stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A legacy (`torch.save` before 1.6) file: the magic number, protocol version and system
/// information pickles, then the data pickle, the storage keys pickle and raw storages.
fn torch_legacy(data_pkl: &[u8], keys_pkl: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    out.extend_from_slice(b"\x80\x02M\xe9\x03.");
    out.extend_from_slice(b"\x80\x02}q\x00.");
    out.extend_from_slice(data_pkl);
    out.extend_from_slice(keys_pkl);
    out.extend_from_slice(tail);
    out
}

// ---------------------------------------------------------------- protobuf messages

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A protobuf field: `(field, wire type, payload)`; a message is a list of them.
#[derive(Debug, Clone)]
enum Field {
    Varint(u32, u64),
    Fixed32(u32, u32),
    Bytes(u32, Vec<u8>),
    Message(u32, Vec<Field>),
    /// The same field many times (repeated empty layers, dims).
    Many(u16, Box<Field>),
}

fn encode_fields(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        match f {
            Field::Varint(k, v) => {
                varint(u64::from(*k) << 3, out);
                varint(*v, out);
            }
            Field::Fixed32(k, v) => {
                varint((u64::from(*k) << 3) | 5, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Bytes(k, b) => {
                varint((u64::from(*k) << 3) | 2, out);
                varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            Field::Message(k, m) => {
                let mut inner = Vec::new();
                encode_fields(m, &mut inner);
                encode_fields(&[Field::Bytes(*k, inner)], out);
            }
            Field::Many(n, f) => {
                for _ in 0..*n {
                    encode_fields(std::slice::from_ref(f), out);
                }
            }
        }
    }
}

/// Dimension values: small, zero, negative (as varints), huge.
fn dim() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(u64::MAX),
        Just(1 << 31),
        Just(1 << 40),
        any::<u64>()
    ]
}

/// A blob: V1.0 dims (fields 1-5) or a V1.1 shape (field 7), packed floats (5 or 6),
/// unpacked floats, doubles (8).
fn blob() -> impl Strategy<Value = Vec<Field>> {
    let field = prop_oneof![
        (1u32..6, dim()).prop_map(|(k, v)| Field::Varint(k, v)),
        (5u32..7, 0usize..512).prop_map(|(k, n)| Field::Bytes(k, vec![0x3f; n])),
        (5u32..7, any::<u32>()).prop_map(|(k, v)| Field::Fixed32(k, v)),
        proptest::collection::vec(dim(), 0..8).prop_map(|dims| {
            Field::Message(7, dims.into_iter().map(|d| Field::Varint(1, d)).collect())
        }),
        (1u16..3000, dim()).prop_map(|(n, d)| Field::Message(
            7,
            vec![Field::Many(n, Box::new(Field::Varint(1, d)))]
        )),
        (0usize..64).prop_map(|n| Field::Bytes(8, vec![0; 8 * n])),
    ];
    proptest::collection::vec(field, 0..6)
}

/// A `NetParameter`: V1 layers (field 2: name 4, type 5, blobs 6) or layers (field 100:
/// name 1, type 2, blobs 7), possibly repeated many times.
fn net() -> impl Strategy<Value = Vec<Field>> {
    let v1 = (
        any::<bool>(),
        prop_oneof![Just(4u64), Just(14), Just(30), any::<u64>()],
        proptest::collection::vec(blob(), 0..3),
    )
        .prop_map(|(named, kind, blobs)| {
            let mut l = vec![Field::Varint(5, kind)];
            if named {
                l.push(Field::Bytes(4, b"conv1".to_vec()));
            }
            l.extend(blobs.into_iter().map(|b| Field::Message(6, b)));
            Field::Message(2, l)
        });
    let v2 = (
        any::<bool>(),
        prop_oneof![Just("Convolution"), Just("InnerProduct"), Just("ReLU")],
        proptest::collection::vec(blob(), 0..3),
    )
        .prop_map(|(named, kind, blobs)| {
            let mut l = vec![Field::Bytes(2, kind.as_bytes().to_vec())];
            if named {
                l.push(Field::Bytes(1, b"fc6".to_vec()));
            }
            l.extend(blobs.into_iter().map(|b| Field::Message(7, b)));
            Field::Message(100, l)
        });
    let layer = prop_oneof![v1, v2];
    let many = (1u16..20_000, prop_oneof![Just(2u32), Just(100)])
        .prop_map(|(n, k)| Field::Many(n, Box::new(Field::Message(k, Vec::new()))));
    proptest::collection::vec(prop_oneof![4 => layer, 1 => many], 0..6)
}

// ---------------------------------------------------------------- npy, npz, safetensors

/// An `.npy` header dict and a payload of `payload` bytes.
fn npy(descr: &str, fortran: bool, shape: &[u64], payload: usize) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let fortran = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, payload));
    out
}

fn npy_entry() -> impl Strategy<Value = Vec<u8>> {
    let descr =
        proptest::sample::select(vec!["<f4", "<f8", "<f2", "|u1", "<i8", ">f4", "|b1", "<c8"]);
    let shape = proptest::collection::vec(
        prop_oneof![0u64..20, Just(1 << 32), Just(1 << 63), any::<u64>()],
        0..5,
    );
    (
        descr,
        any::<bool>(),
        shape,
        prop_oneof![0usize..2048, Just(1 << 20)],
    )
        .prop_map(|(d, f, s, n)| npy(d, f, &s, n))
}

/// An `.npz`: the entries stored or deflated (zeros deflate about 1000:1, the bomb).
fn npz(entries: &[Vec<u8>], deflate: bool) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::FileOptions::default().compression_method(method);
    for (i, e) in entries.iter().enumerate() {
        zip.start_file(format!("a{i}.npy"), options).unwrap();
        zip.write_all(e).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A safetensors file: a JSON header of tensors with the given dtypes, shapes and offsets,
/// and a payload.
fn safetensors(
    tensors: &[(String, Vec<u64>, (u64, u64))],
    metadata: usize,
    payload: usize,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    for (i, (dtype, shape, (a, b))) in tensors.iter().enumerate() {
        header.insert(
            format!("t{i}"),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [a, b]}),
        );
    }
    if metadata > 0 {
        header.insert(
            "__metadata__".into(),
            serde_json::json!({"k": "v".repeat(metadata)}),
        );
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend(std::iter::repeat_n(0u8, payload));
    out
}

fn safetensors_file() -> impl Strategy<Value = Vec<u8>> {
    let dtype = proptest::sample::select(vec!["F32", "F16", "BF16", "F64", "U8", "I64", "BOOL"])
        .prop_map(String::from);
    let shape = proptest::collection::vec(prop_oneof![0u64..16, Just(1 << 32), any::<u64>()], 0..5);
    let offsets = prop_oneof![(0u64..4096, 0u64..4096), (any::<u64>(), any::<u64>())];
    let tensor = (dtype, shape, offsets);
    (
        proptest::collection::vec(tensor, 0..6),
        prop_oneof![Just(0usize), 1usize..100_000],
        0usize..8192,
    )
        .prop_map(|(t, m, p)| safetensors(&t, m, p))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    /// Pickle opcode streams as a zip checkpoint's `data.pkl`.
    #[test]
    fn pickles_in_a_zip_stay_within_budget(ops in proptest::collection::vec(op(), 0..40), stop: bool, storage in 0usize..4096) {
        let _ = read_within_budget("zip.pt", &torch_zip(&pickle(&ops, stop), &vec![0; storage]));
    }

    /// Pickle opcode streams as a legacy checkpoint's data and storage-key pickles.
    #[test]
    fn legacy_pickles_stay_within_budget(data in proptest::collection::vec(op(), 0..40), keys in proptest::collection::vec(op(), 0..8), tail in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_within_budget("legacy.pickle", &torch_legacy(&pickle(&data, true), &pickle(&keys, true), &tail));
    }

    /// Caffe `NetParameter` messages (layers, blobs, dims), also as a mean blob.
    #[test]
    fn caffe_messages_stay_within_budget(net in net()) {
        let mut bytes = Vec::new();
        encode_fields(&net, &mut bytes);
        let _ = read_within_budget("model.caffemodel", &bytes);
    }

    /// `.npz` archives of `.npy` entries with any header, stored or deflated.
    #[test]
    fn npz_archives_stay_within_budget(entries in proptest::collection::vec(npy_entry(), 1..4), deflate: bool) {
        let _ = read_within_budget("arrays.npz", &npz(&entries, deflate));
    }

    /// safetensors headers with any dtypes, shapes, offsets and metadata.
    #[test]
    fn safetensors_headers_stay_within_budget(bytes in safetensors_file()) {
        let _ = read_within_budget("weights.safetensors", &bytes);
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile")
}

/// Every file of the corpus is refused with an error, within the budget; the table of file,
/// size, peak and error is printed (`--nocapture`).
#[test]
fn the_hostile_corpus_is_refused_within_budget() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("py" | "md")))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the corpus is missing: {files:?}");
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        let (outcome, peak) = read_measured(&name, &bytes);
        let error = outcome.expect_err(&format!("{name} was read without an error"));
        println!(
            "| {name} | {} | {:.2} MiB | {error} |",
            bytes.len(),
            peak as f64 / (1u64 << 20) as f64
        );
    }
}

/// The weight files of `fixtures/checkpoints` (real PyTorch, Caffe, numpy and safetensors
/// output) are read within the same budget.
#[test]
fn real_weight_files_are_read_within_budget() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/checkpoints");
    let mut read = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if matches!(p.extension().and_then(|e| e.to_str()), Some("py" | "json")) {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let (outcome, peak) = read_measured(&name, &std::fs::read(&p).unwrap());
        println!("{name}: peak {peak} bytes, {outcome:?}");
        read += usize::from(outcome.is_ok());
    }
    assert!(read >= 10, "only {read} fixtures read");
}

/// The budget is checked: a reader that held more would fail (the counting allocator sees
/// what a read holds at once, not what it allocates in total).
#[test]
fn the_counting_allocator_measures_the_peak_of_live_bytes() {
    let ((), peak) = counting::measure(|| {
        let a = vec![1u8; 3 << 20];
        let b = vec![2u8; 1 << 20];
        drop(a);
        let c = vec![3u8; 1 << 20];
        assert_eq!(b.len() + c.len(), 2 << 20);
    });
    assert!((4 << 20..(4 << 20) + 4096).contains(&peak), "{peak}");
    assert!(budget(1000, None) < budget(1000, Some(Format::Npz)));
}
