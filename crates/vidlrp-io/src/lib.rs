//! vidlrp-io: tensor files in and out of [`HostTensor`]s.
//!
//! - `.npy` (numpy arrays: clips, relevance maps), read as `f32` from `<f4`/`<f8`, written `<f4`;
//! - weight archives: safetensors and `.npz`, read into a name -> tensor [`TensorMap`], the
//!   format recognised by content, not by name;
//! - every write goes to a temporary file next to the target and is renamed into place, so a
//!   failed run never leaves a partial output behind;
//! - [`Outputs`]: all outputs of one command staged and published together, or not at all.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use vidlrp_core::HostTensor;

mod json;
mod publish;
pub use json::{read_versioned, write_json, Versioned};
pub use publish::{remove_staged, Outputs};

/// Named tensors of a weight file, sorted by name.
pub type TensorMap = BTreeMap<String, HostTensor>;

/// What went wrong reading or writing a tensor file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The file could not be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        cause: io::Error,
    },
    /// The file is not valid in its format (truncated, corrupt, wrong type, ...).
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl IoError {
    fn io(path: &Path, source: io::Error) -> Self {
        IoError::Io {
            path: path.to_path_buf(),
            cause: source,
        }
    }
    fn format(path: &Path, message: impl Into<String>) -> Self {
        IoError::Format {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = IoError> = std::result::Result<T, E>;

/// The values an `.npy` header declares, checked against `max_bytes` before anything is
/// allocated: a header may declare any shape, and the reader would reserve room for all of it.
///
/// **Errors** if the shape's product overflows, the dtype's bytes per value times it does, or
/// it exceeds `max_bytes` (what the file can hold).
pub fn declared_values(
    path: &Path,
    shape: &[u64],
    bytes_per_value: u64,
    max_bytes: u64,
    what: &str,
) -> Result<usize> {
    let too_big = || {
        IoError::format(
            path,
            format!(
                "{what}: the header declares shape {shape:?}, more than the {max_bytes} bytes \
                 the file can hold; is it corrupt?"
            ),
        )
    };
    let n = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(too_big)?;
    let bytes = n.checked_mul(bytes_per_value).ok_or_else(too_big)?;
    if bytes > max_bytes {
        return Err(too_big());
    }
    usize::try_from(n).map_err(|_| too_big())
}

/// The most bytes the arrays of an `.npz` may inflate to, all together: 64 times the archive's
/// size plus 256 MiB. Weights and clips compress by far less; a zip bomb is refused before it
/// is inflated.
pub fn npz_inflation_limit(file_bytes: u64) -> u64 {
    file_bytes.saturating_mul(64).saturating_add(256 << 20)
}

fn npy_to_host<R: Read>(
    path: &Path,
    npy: npyz::NpyFile<R>,
    what: &str,
    max_bytes: u64,
) -> Result<HostTensor> {
    if npy.order() != npyz::Order::C {
        return Err(IoError::format(
            path,
            format!("{what}: Fortran-order arrays are not supported; save a C-contiguous array"),
        ));
    }
    let dtype = npy.dtype().descr();
    let width = if dtype == "'<f8'" { 8 } else { 4 };
    declared_values(path, npy.shape(), width, max_bytes, what)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f32> = match dtype.as_str() {
        "'<f4'" | "'|f4'" => npy.into_vec::<f32>(),
        "'<f8'" => npy
            .into_vec::<f64>()
            .map(|v| v.into_iter().map(|x| x as f32).collect()),
        other => {
            return Err(IoError::format(
                path,
                format!("{what}: dtype {other} is not supported (expected float32 or float64)"),
            ))
        }
    }
    .map_err(|e| {
        IoError::format(
            path,
            format!("{what}: cannot read the array data ({e}); is the file truncated?"),
        )
    })?;
    HostTensor::new(shape, data).map_err(|e| IoError::format(path, format!("{what}: {e}")))
}

/// Reads a `.npy` array as `f32` (`float32` as is, `float64` rounded).
///
/// ```
/// use vidlrp_core::HostTensor;
/// # let dir = std::env::temp_dir().join(format!("vidlrp-doc-npy-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("r.npy");
/// let t = HostTensor::new(vec![2, 2], vec![1.0, -2.0, 0.5, 4.0]).unwrap();
/// vidlrp_io::write_npy(&path, &t).unwrap();
/// assert_eq!(vidlrp_io::read_npy(&path).unwrap(), t);
/// ```
///
/// **Errors** on a missing, truncated or non-npy file and on other dtypes.
pub fn read_npy(path: &Path) -> Result<HostTensor> {
    let file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let size = file.metadata().map_err(|e| IoError::io(path, e))?.len();
    let npy = npyz::NpyFile::new(io::BufReader::new(file))
        .map_err(|e| IoError::format(path, format!("not a readable .npy file ({e})")))?;
    npy_to_host(path, npy, "array", size)
}

/// Writes `f32` data of `shape` as a `.npy` array, atomically.
pub fn write_npy(path: &Path, t: &HostTensor) -> Result<()> {
    atomic_write(path, |w| write_npy_to(w, t))
}

fn write_npy_to<W: Write>(w: W, t: &HostTensor) -> io::Result<()> {
    use npyz::WriterBuilder;
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    writer.extend(t.data().iter().copied())?;
    writer.finish()
}

/// Writes `i64` values as a 1-d `.npy` array, atomically.
pub fn write_npy_i64(path: &Path, values: &[i64]) -> Result<()> {
    atomic_write(path, |w| {
        use npyz::WriterBuilder;
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[values.len() as u64])
            .writer(w)
            .begin_nd()?;
        writer.extend(values.iter().copied())?;
        writer.finish()
    })
}

/// Reads every tensor of a weight file: safetensors or `.npz`, recognised by content.
///
/// **Errors** on unreadable, truncated or corrupt files and on non-float tensors.
pub fn read_tensors(path: &Path) -> Result<TensorMap> {
    let mut head = [0u8; 4];
    let mut file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let n = file.read(&mut head).map_err(|e| IoError::io(path, e))?;
    drop(file);
    if n == 4 && (head == *b"PK\x03\x04" || head == *b"PK\x05\x06") {
        read_npz(path)
    } else {
        read_safetensors(path)
    }
}

fn read_npz(path: &Path) -> Result<TensorMap> {
    let mut npz = npyz::npz::NpzArchive::open(path)
        .map_err(|e| IoError::format(path, format!("not a readable .npz archive ({e})")))?;
    let names: Vec<String> = npz.array_names().map(str::to_string).collect();
    if names.is_empty() {
        return Err(IoError::format(path, "the .npz archive holds no arrays"));
    }
    let size = fs::metadata(path).map_err(|e| IoError::io(path, e))?.len();
    // What the arrays may still inflate to (npz_inflation_limit), counted down per array.
    let mut left = npz_inflation_limit(size);
    let mut out = TensorMap::new();
    for name in names {
        let npy = npz
            .by_name(&name)
            .map_err(|e| IoError::format(path, format!("array {name}: {e}")))?
            .ok_or_else(|| IoError::format(path, format!("array {name} vanished")))?;
        let t = npy_to_host(path, npy, &format!("array {name}"), left)?;
        left -= 4 * t.data().len() as u64;
        out.insert(name, t);
    }
    Ok(out)
}

fn read_safetensors(path: &Path) -> Result<TensorMap> {
    read_safetensors_with_metadata(path).map(|(t, _)| t)
}

/// Free-form string metadata of a safetensors header (`__metadata__`).
pub type Metadata = BTreeMap<String, String>;

/// The `__metadata__` of a safetensors file, read from its header alone (the tensors are not
/// read); `None` if the file is not safetensors (an `.npz`, a checkpoint of another format).
///
/// **Errors** if the file cannot be opened or read.
pub fn read_safetensors_metadata(path: &Path) -> Result<Option<Metadata>> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(|e| IoError::io(path, e))?;
    let size = f.metadata().map_err(|e| IoError::io(path, e))?.len();
    let mut len = [0u8; 8];
    if f.read_exact(&mut len).is_err() {
        return Ok(None);
    }
    let n = u64::from_le_bytes(len);
    // A header is JSON starting with '{', smaller than the file and than safetensors' own limit.
    if !(2..=100_000_000).contains(&n) || n > size.saturating_sub(8) {
        return Ok(None);
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| IoError::io(path, e))?;
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&header) else {
        return Ok(None);
    };
    let meta = map
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(meta))
}

/// Reads every tensor of a safetensors file and its header's `__metadata__` (empty if none).
///
/// **Errors** on unreadable, truncated or corrupt files and on non-float tensors.
pub fn read_safetensors_with_metadata(path: &Path) -> Result<(TensorMap, Metadata)> {
    let file = fs::File::open(path).map_err(|e| IoError::io(path, e))?;
    let len = file.metadata().map_err(|e| IoError::io(path, e))?.len();
    safetensors_from(std::io::BufReader::with_capacity(1 << 20, file), len, path)
}

/// Parses safetensors `bytes` (e.g. a model built into a program) into tensors and metadata;
/// `path` names them in errors.
///
/// **Errors** on truncated or corrupt bytes and on non-float tensors.
pub fn parse_safetensors(bytes: &[u8], path: &Path) -> Result<(TensorMap, Metadata)> {
    safetensors_from(bytes, bytes.len() as u64, path)
}

/// Reads a safetensors stream of `len` bytes: the header (validated by the `safetensors` crate:
/// tensors contiguous, in offset order, sizes matching shapes) and then each tensor, decoded
/// 1 MB at a time, so the file's bytes are never all in memory next to the tensors. Nothing is
/// allocated beyond what the stream's length can hold.
fn safetensors_from(
    mut r: impl std::io::Read,
    len: u64,
    path: &Path,
) -> Result<(TensorMap, Metadata)> {
    use safetensors::tensor::Metadata as Header;
    use safetensors::Dtype;
    let invalid = |why: String| {
        IoError::format(
            path,
            format!(
                "not a valid weight file: neither an .npz archive nor a complete safetensors \
                 file ({why}); is it truncated?"
            ),
        )
    };
    let read = |r: &mut dyn std::io::Read, buf: &mut [u8]| {
        r.read_exact(buf)
            .map_err(|e| invalid(format!("reading: {e}")))
    };
    let mut n = [0u8; 8];
    read(&mut r, &mut n)?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) || n > 100_000_000 {
        return Err(invalid(format!(
            "a header of {n} bytes in a file of {len} bytes"
        )));
    }
    let mut header = vec![0u8; n as usize];
    read(&mut r, &mut header)?;
    let header: Header =
        serde_json::from_slice(&header).map_err(|e| invalid(format!("header: {e}")))?;
    let mut tensors: Vec<(String, &safetensors::tensor::TensorInfo)> =
        header.tensors().into_iter().collect();
    tensors.sort_by_key(|(_, info)| info.data_offsets);
    // Validated: contiguous from 0, so the last end is the data's length.
    let data_len = tensors.last().map_or(0, |(_, i)| i.data_offsets.1) as u64;
    if data_len != len - 8 - n {
        return Err(invalid(format!(
            "the header describes {data_len} bytes of tensors, the file holds {}",
            len - 8 - n
        )));
    }
    let metadata: Metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut out = TensorMap::new();
    let mut chunk = vec![0u8; 1 << 20];
    for (name, info) in tensors {
        let (encoding, width) = match info.dtype {
            Dtype::F32 => (FloatEncoding::F32, 4),
            Dtype::F64 => (FloatEncoding::F64, 8),
            Dtype::F16 => (FloatEncoding::F16, 2),
            Dtype::BF16 => (FloatEncoding::BF16, 2),
            other => {
                return Err(IoError::format(
                    path,
                    format!("tensor {name} has dtype {other:?}; expected a float type"),
                ))
            }
        };
        let (start, end) = info.data_offsets;
        let mut data = Vec::with_capacity((end - start) / width);
        let mut left = end - start;
        while left > 0 {
            let take = left.min(chunk.len() - chunk.len() % 8);
            read(&mut r, &mut chunk[..take])?;
            data.extend(decode_floats(&chunk[..take], encoding));
            left -= take;
        }
        let t = HostTensor::new(info.shape.clone(), data)
            .map_err(|e| IoError::format(path, format!("tensor {name}: {e}")))?;
        out.insert(name, t);
    }
    Ok((out, metadata))
}

/// The little-endian float encodings of weight files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatEncoding {
    /// IEEE single precision.
    F32,
    /// IEEE double precision (rounded to single).
    F64,
    /// IEEE half precision (exact in single).
    F16,
    /// bfloat16 (exact in single).
    BF16,
}

/// Decodes little-endian floats of `encoding` to `f32`; a trailing partial value is ignored.
///
/// ```
/// use vidlrp_io::{decode_floats, FloatEncoding};
/// assert_eq!(decode_floats(&[0x00, 0x3c, 0x00, 0xc0], FloatEncoding::F16), vec![1.0, -2.0]);
/// assert_eq!(decode_floats(&1.5f64.to_le_bytes(), FloatEncoding::F64), vec![1.5]);
/// ```
pub fn decode_floats(raw: &[u8], encoding: FloatEncoding) -> Vec<f32> {
    let half = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
    match encoding {
        FloatEncoding::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        FloatEncoding::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        FloatEncoding::F16 => raw.chunks_exact(2).map(|b| f16_to_f32(half(b))).collect(),
        FloatEncoding::BF16 => raw
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(half(b)) << 16))
            .collect(),
    }
}

/// IEEE half to single precision (exact: every half is a single).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: renormalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Writes tensors as a safetensors file (`F32`), atomically.
pub fn write_safetensors(path: &Path, tensors: &TensorMap) -> Result<()> {
    write_safetensors_with_metadata(path, tensors, &Metadata::new())
}

/// Writes tensors as a safetensors file (`F32`) with `metadata` in its header, atomically.
pub fn write_safetensors_with_metadata(
    path: &Path,
    tensors: &TensorMap,
    metadata: &Metadata,
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.data().iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape().to_vec(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (k.as_str(), v))
                .map_err(|e| IoError::format(path, format!("tensor {k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<std::collections::HashMap<_, _>>()
    });
    let mut data = safetensors::serialize(views, meta)
        .map_err(|e| IoError::format(path, format!("cannot serialise: {e}")))?;
    sort_header(&mut data);
    atomic_write(path, |w| w.write_all(&data))
}

/// Rewrites a serialised safetensors header with its keys in sorted order (the serialiser
/// takes the metadata as a `HashMap`, whose order changes from run to run): the same tensors
/// and metadata give the same bytes. The compact JSON keeps its length, so the padding and the
/// data offsets stay.
fn sort_header(data: &mut [u8]) {
    let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) as usize;
    let header = &data[8..8 + n];
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(header.trim_ascii_end()) else {
        return;
    };
    let Ok(sorted) = serde_json::to_vec(&v) else {
        return;
    };
    if sorted.len() <= n {
        data[8..8 + sorted.len()].copy_from_slice(&sorted);
        data[8 + sorted.len()..8 + n].fill(b' ');
    }
}

/// Writes tensors as an uncompressed `.npz` archive (numpy's `np.savez`), atomically.
pub fn write_npz(path: &Path, tensors: &TensorMap) -> Result<()> {
    atomic_write(path, |w| {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let options = zip::write::FileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, t) in tensors {
            zip.start_file(npyz::npz::file_name_from_array_name(name), options)?;
            write_npy_to(&mut zip, t)?;
        }
        let cursor = zip.finish()?;

        w.write_all(cursor.get_ref())
    })
}

/// 16 hex digits no other process can predict (the standard library's per-process random
/// hash keys, drawn from the OS): the part of temporary names that keeps them from being
/// planted in advance.
pub fn unpredictable_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// Creates a new file next to `near` named `.{stem}.{tag}-{pid}-{token}`, exclusively
/// (`create_new`: an existing file or symbolic link of that name is never opened, so nothing
/// planted there is written through). Returns the file and its path.
///
/// **Errors** if no such file can be created (eight names tried).
pub fn create_exclusive(dir: &Path, stem: &str, tag: &str) -> io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..8 {
        let p = dir.join(format!(
            ".{stem}.{tag}-{}-{}",
            std::process::id(),
            unpredictable_token()
        ));
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no temporary name was free")))
}

/// Runs `write` on a temporary file next to `path` (created exclusively under an unpredictable
/// name, [`create_exclusive`]) and renames it into place (a symbolic link at `path` is
/// replaced, not followed); on any error the temporary file is removed and `path` is left
/// untouched.
pub fn atomic_write(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| IoError::format(path, "not a file path"))?;
    let (file, tmp) =
        create_exclusive(dir, &name.to_string_lossy(), "tmp").map_err(|e| IoError::io(path, e))?;
    let result = (|| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IoError::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vidlrp-io-{tag}-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_same_tensors_and_metadata_give_the_same_bytes() {
        let d = tmpdir("sorted");
        let meta: Metadata = (0..6)
            .map(|i| (format!("key{i}"), format!("v{i}")))
            .collect();
        let files: Vec<Vec<u8>> = (0..12)
            .map(|i| {
                let p = d.join(format!("m{i}.safetensors"));
                write_safetensors_with_metadata(&p, &sample(), &meta).unwrap();
                fs::read(&p).unwrap()
            })
            .collect();
        assert!(files.iter().all(|f| f == &files[0]));
        let (t, m) = read_safetensors_with_metadata(&d.join("m0.safetensors")).unwrap();
        assert_eq!((t, m), (sample(), meta.clone()));
        assert_eq!(
            read_safetensors_metadata(&d.join("m0.safetensors")).unwrap(),
            Some(meta)
        );
        fs::remove_dir_all(&d).unwrap();
    }

    fn sample() -> TensorMap {
        let mut m = TensorMap::new();
        m.insert(
            "a.weight".into(),
            HostTensor::new(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-7, 9.0]).unwrap(),
        );
        m.insert(
            "a.bias".into(),
            HostTensor::new(vec![2], vec![0.5, -0.5]).unwrap(),
        );
        m
    }

    #[test]
    fn safetensors_and_npz_round_trip() {
        let d = tmpdir("rt");
        for file in ["w.safetensors", "w.npz"] {
            let p = d.join(file);
            if file.ends_with("npz") {
                write_npz(&p, &sample()).unwrap();
            } else {
                write_safetensors(&p, &sample()).unwrap();
            }
            assert_eq!(read_tensors(&p).unwrap(), sample(), "{file}");
        }
        let p = d.join("x.npy");
        let t = HostTensor::new(vec![1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        write_npy(&p, &t).unwrap();
        assert_eq!(read_npy(&p).unwrap(), t);
    }

    #[test]
    fn truncated_and_garbage_files_error() {
        let d = tmpdir("bad");
        let p = d.join("w.safetensors");
        write_safetensors(&p, &sample()).unwrap();
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        assert!(matches!(read_tensors(&p), Err(IoError::Format { .. })));
        fs::write(&p, b"hello world, no tensors here").unwrap();
        assert!(read_tensors(&p).is_err());
        let n = d.join("x.npy");
        write_npy(&n, &HostTensor::zeros(vec![10, 10])).unwrap();
        let bytes = fs::read(&n).unwrap();
        fs::write(&n, &bytes[..bytes.len() - 7]).unwrap();
        assert!(read_npy(&n).is_err());
        assert!(matches!(
            read_npy(&d.join("missing.npy")),
            Err(IoError::Io { .. })
        ));
    }

    /// A header may not make us allocate more than the file holds: two tensors claiming the
    /// same bytes, or a tensor larger than the data, are refused before any tensor is read.
    #[test]
    fn a_header_claiming_more_than_the_file_is_refused() {
        let d = tmpdir("claims");
        let file = |header: &str, data: usize| {
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend(header.as_bytes());
            b.extend(vec![0u8; data]);
            b
        };
        let path = d.join("w.safetensors");
        let ok = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            8,
        );
        assert_eq!(
            parse_safetensors(&ok, &path).unwrap().0["a"].data(),
            [0.0, 0.0]
        );
        for (header, data) in [
            // A billion floats in an 8-byte file.
            (
                r#"{"a":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#,
                8,
            ),
            // Overlapping tensors, each the whole file.
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                8,
            ),
            // Fewer bytes than the shape needs.
            (
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                8,
            ),
        ] {
            let bytes = file(header, data);
            fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(read_tensors(&path), Err(IoError::Format { .. })),
                "{header}"
            );
            assert!(parse_safetensors(&bytes, &path).is_err(), "{header}");
        }
    }

    #[test]
    fn half_precision_decodes() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
