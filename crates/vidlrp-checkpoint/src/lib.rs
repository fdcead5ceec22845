//! vidlrp-checkpoint: weight files as they exist in the wild, read into a name -> tensor
//! [`TensorMap`] without executing anything in them.
//!
//! | format ([`Format`]) | recognised by | read with |
//! |---|---|---|
//! | safetensors | an 8-byte header length, then `{` | `safetensors` (via `vidlrp-io`) |
//! | `.npz` | a zip of `.npy` entries | `npyz` (via `vidlrp-io`) |
//! | PyTorch zip (1.6+, `.pt`/`.pth`) | a zip with `data.pkl` | `pytorch-reader`, after the [`audit`] |
//! | PyTorch legacy (0.1.10-1.5, `c3d.pickle`) | pickle protocol 2 + torch's magic number | `pytorch-reader`, after the [`audit`] |
//! | Caffe `NetParameter` (`.caffemodel`) | anything else that decodes as one | `prost` ([`caffe`]) |
//!
//! Formats are told apart by content, never by the file name. PyTorch checkpoints are
//! unwrapped: `{'state_dict': ...}`, `{'model': ...}`, `{'model_state_dict': ...}` and
//! `{'net': ...}` wrappers and DataParallel's `module.` prefix are removed; what is left out
//! (optimizer state, integer buffers) is listed in [`Checkpoint::skipped`], never dropped
//! silently. Caffe layers become `NAME.weight` and `NAME.bias` with leading unit dimensions
//! removed (a convolution keeps `(out, in, kT, kH, kW)`, an inner product `(out, in)`).
//!
//! ```no_run
//! let ck = vidlrp_checkpoint::read(std::path::Path::new("c3d.pickle")).unwrap();
//! println!("{} with {} tensors", ck.format, ck.tensors.len());
//! ```
//!
//! ## Memory
//!
//! Files come from strangers, so what a file *declares* (shapes, storage sizes, layer and
//! dimension counts, inflated sizes) is checked before it is allocated. Reading a file of `n`
//! bytes holds at most `8 n + 16 MiB` at once, plus, for `.npz`, what its arrays may inflate
//! to ([`vidlrp_io::npz_inflation_limit`]) and, for PyTorch pickles, the 128 MiB the pickle
//! reader may copy out of its memo before it refuses the file as a memo bomb; a file that
//! would need more is refused with an error. `tests/hostile.rs` checks this with a counting
//! allocator on generated files (pickle opcode streams, protobuf messages, `.npy` headers in
//! zip directories, safetensors headers) and on the corpus of `fixtures/hostile`;
//! `cargo xtask fuzz` runs many more cases.
//!
//! Model-specific naming (which layer is `conv1`) is the business of the model crate
//! (`vidlrp-c3d`); this crate knows formats only.

pub mod audit;
pub mod caffe;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use prost::bytes::Bytes;
use vidlrp_core::HostTensor;
pub use vidlrp_io::{Metadata, TensorMap};

/// How a weight file was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// safetensors.
    Safetensors,
    /// numpy `.npz`.
    Npz,
    /// PyTorch 1.6+ zip checkpoint.
    TorchZip,
    /// PyTorch 0.1.10-1.5 legacy pickle stream.
    TorchLegacy,
    /// Caffe `NetParameter`, C3D v1.0 dialect (V1 layers, 5-d blobs).
    CaffeV10,
    /// Caffe `NetParameter`, v1.1 / BVLC dialect (layer messages, blob shapes).
    CaffeV11,
}

impl Format {
    /// Whether this is one of the Caffe dialects.
    pub fn is_caffe(self) -> bool {
        matches!(self, Format::CaffeV10 | Format::CaffeV11)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::Npz => "npz",
            Format::TorchZip => "pytorch-zip",
            Format::TorchLegacy => "pytorch-legacy",
            Format::CaffeV10 => "caffe-v1.0",
            Format::CaffeV11 => "caffe-v1.1",
        })
    }
}

/// A weight file's tensors and what was learnt reading it.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The storage format.
    pub format: Format,
    /// Float tensors, by their names in the file (after unwrapping), as `f32`.
    pub tensors: TensorMap,
    /// The safetensors header's metadata (empty for other formats).
    pub metadata: Metadata,
    /// The wrapper key the weights were found under (`state_dict`, `model`, ...) and whether a
    /// `module.` prefix was removed, for reports.
    pub unwrapped: Vec<String>,
    /// What was read but left out, each with the reason (non-float tensors, tensors outside
    /// the wrapper, Caffe layers without parameters).
    pub skipped: Vec<String>,
}

/// What went wrong reading a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or decoding through `vidlrp-io` failed.
    #[error(transparent)]
    Io(#[from] vidlrp_io::IoError),
    /// The file is not a valid checkpoint of its format.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file asks for something a weight file must not (a pickle naming `os.system`).
    #[error("{path}: {message}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

fn format_err(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path, e: io::Error) -> CheckpointError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        format_err(path, "the file is truncated")
    } else {
        CheckpointError::Io(vidlrp_io::IoError::Io {
            path: path.to_path_buf(),
            cause: e,
        })
    }
}

/// The magic start of a legacy `torch.save` stream: protocol 2, then LONG1 of torch's magic
/// number `0x1950a86a20f9469cfc6c`.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Tells the format from the first bytes (and, for zip files, the entry names).
///
/// **Errors** on unreadable files and on formats that are recognised but not supported.
pub fn detect(path: &Path) -> Result<Format> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .map_err(|e| io_err(path, e))?
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| io_err(path, e))?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| format_err(path, format!("a damaged zip archive ({e})")))?;
        let torch = zip
            .file_names()
            .any(|n| n == "data.pkl" || n.ends_with("/data.pkl"));
        return Ok(if torch { Format::TorchZip } else { Format::Npz });
    }
    if head.starts_with(LEGACY_MAGIC) {
        return Ok(Format::TorchLegacy);
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return Err(format_err(
            path,
            "a tar archive: PyTorch checkpoints from before 0.1.10 are not supported; load it \
             in PyTorch and save it again",
        ));
    }
    if head.first() == Some(&0x80) {
        return Err(format_err(
            path,
            "a pickle that is not a torch.save checkpoint (no torch magic number, no zip \
             container); its tensor data would be missing",
        ));
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    // Caffe: the dialect is known after decoding.
    Ok(Format::CaffeV10)
}

/// Reads a weight file of any supported [`Format`].
///
/// **Errors** on unreadable, truncated or corrupt files, on pickles naming a global that is
/// not a tensor-rebuild function ([`CheckpointError::Refused`]), on Caffe layers with
/// parameters of an unknown type, duplicate layer names, wrong blob sizes, and on files of no
/// supported format.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let format = detect(path)?;
    let empty = |format, tensors| Checkpoint {
        format,
        tensors,
        metadata: Metadata::new(),
        unwrapped: Vec::new(),
        skipped: Vec::new(),
    };
    match format {
        Format::Safetensors => {
            let (tensors, metadata) = vidlrp_io::read_safetensors_with_metadata(path)?;
            Ok(Checkpoint {
                metadata,
                ..empty(format, tensors)
            })
        }
        Format::Npz => Ok(empty(format, vidlrp_io::read_tensors(path)?)),
        Format::TorchZip | Format::TorchLegacy => read_torch(path, format),
        Format::CaffeV10 | Format::CaffeV11 => read_caffe(path),
    }
}

/// Reads a Caffe `BlobProto` file (e.g. C3D's `.binaryproto` mean, `1x3x16x128x171`) with
/// its dimensions as stored.
///
/// **Errors** on unreadable files and bytes that are not a blob of consistent size.
pub fn read_blob(path: &Path) -> Result<HostTensor> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    caffe::decode_blob(Bytes::from(bytes)).map_err(|m| format_err(path, m))
}

fn read_caffe(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let model = caffe::decode_model(Bytes::from(bytes)).map_err(|m| {
        format_err(
            path,
            format!(
                "not a weight file this tool reads (not safetensors, .npz, a PyTorch \
                 checkpoint, or a Caffe model: {m})"
            ),
        )
    })?;
    let mut tensors = TensorMap::new();
    for l in model.layers {
        tensors.insert(format!("{}.weight", l.name), l.weight);
        if let Some(b) = l.bias {
            tensors.insert(format!("{}.bias", l.name), b);
        }
    }
    Ok(Checkpoint {
        format: if model.dialect == "v1.0" {
            Format::CaffeV10
        } else {
            Format::CaffeV11
        },
        tensors,
        metadata: Metadata::new(),
        unwrapped: Vec::new(),
        skipped: model
            .skipped
            .into_iter()
            .map(|n| format!("{n} (Caffe layer without parameters)"))
            .collect(),
    })
}

/// Largest `data.pkl` audited in a zip checkpoint (as `pytorch-reader`'s own limit).
const MAX_PICKLE: u64 = pytorch_reader::MAX_PICKLE_SIZE;

fn audit_torch(path: &Path, format: Format) -> Result<()> {
    let refuse = |e: audit::AuditError| match e {
        audit::AuditError::Forbidden(_) => CheckpointError::Refused {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
        audit::AuditError::Invalid(_) => format_err(path, e.to_string()),
    };
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    if format == Format::TorchZip {
        let mut zip = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| format_err(path, format!("a damaged zip archive ({e})")))?;
        let name = zip
            .file_names()
            .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
            .map(str::to_string)
            .ok_or_else(|| format_err(path, "no data.pkl in the archive"))?;
        let entry = zip
            .by_name(&name)
            .map_err(|e| format_err(path, format!("{name}: {e}")))?;
        let mut r = BufReader::new(entry.take(MAX_PICKLE));
        audit::audit_pickle(&mut r).map_err(refuse)?;
    } else {
        // magic number, protocol version, system info, the object, the storage keys.
        let mut r = BufReader::new(file);
        for _ in 0..5 {
            audit::audit_pickle(&mut r).map_err(refuse)?;
        }
    }
    Ok(())
}

/// Wrapper keys a training script puts a state dict under, most specific first.
const WRAPPERS: [&str; 4] = ["state_dict", "model_state_dict", "model", "net"];

fn read_torch(path: &Path, format: Format) -> Result<Checkpoint> {
    audit_torch(path, format)?;
    let reader = pytorch_reader::PytorchReader::new(path)
        .map_err(|e| format_err(path, format!("not a readable PyTorch checkpoint ({e})")))?;
    let mut entries: Vec<(String, pytorch_reader::Tensor)> =
        reader.into_tensors().into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut unwrapped = Vec::new();
    let mut skipped = Vec::new();
    if let Some(w) = WRAPPERS.iter().find(|w| {
        let prefix = format!("{w}.");
        entries.iter().any(|(n, _)| n.starts_with(&prefix))
            && !entries
                .iter()
                .any(|(n, _)| n.starts_with("conv1.") || n == "conv1")
    }) {
        let prefix = format!("{w}.");
        let (inside, outside): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(n, _)| n.starts_with(&prefix));
        skipped.extend(
            outside
                .into_iter()
                .map(|(n, _)| format!("{n} (outside '{w}')")),
        );
        entries = inside
            .into_iter()
            .map(|(n, t)| (n[prefix.len()..].to_string(), t))
            .collect();
        unwrapped.push(format!("'{w}'"));
    }
    if !entries.is_empty() && entries.iter().all(|(n, _)| n.starts_with("module.")) {
        entries = entries
            .into_iter()
            .map(|(n, t)| (n["module.".len()..].to_string(), t))
            .collect();
        unwrapped.push("'module.' prefix".into());
    }
    let file_len = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    // All tensors together: views of one storage are each materialised, so a file of one
    // storage and many views of it could ask for any multiple of its size; twice the file
    // (tied weights) plus 1 MiB is the most read.
    let mut left = file_len.saturating_mul(2).saturating_add(1 << 20);
    let mut tensors = TensorMap::new();
    for (name, t) in entries {
        // A view may declare more elements than its storage holds (stride 0); a weight never
        // needs more bytes than the file has, so nothing larger is materialised.
        if t.byte_len() as u64 > file_len {
            return Err(format_err(
                path,
                format!(
                    "tensor {name} declares {} bytes, more than the file holds ({file_len}); \
                     refusing to materialise it",
                    t.byte_len()
                ),
            ));
        }
        left = left.checked_sub(t.byte_len() as u64).ok_or_else(|| {
            format_err(
                path,
                format!(
                    "the tensors up to {name} declare more than twice the file's {file_len} \
                     bytes (views of one storage, each materialised); refusing to read them"
                ),
            )
        })?;
        let bytes = t
            .read()
            .map_err(|e| format_err(path, format!("tensor {name}: {e}")))?;
        use pytorch_reader::DType;
        use vidlrp_io::FloatEncoding;
        let encoding = match t.dtype() {
            DType::F32 => FloatEncoding::F32,
            DType::F64 => FloatEncoding::F64,
            DType::F16 => FloatEncoding::F16,
            DType::BF16 => FloatEncoding::BF16,
            other => {
                skipped.push(format!("{name} ({other:?}, not a float tensor)"));
                continue;
            }
        };
        let data = vidlrp_io::decode_floats(&bytes, encoding);
        let tensor = HostTensor::new(t.shape().to_vec(), data)
            .map_err(|e| format_err(path, format!("tensor {name}: {e}")))?;
        tensors.insert(name, tensor);
    }
    if tensors.is_empty() {
        return Err(format_err(path, "the checkpoint holds no float tensors"));
    }
    Ok(Checkpoint {
        format,
        tensors,
        metadata: Metadata::new(),
        unwrapped,
        skipped,
    })
}
