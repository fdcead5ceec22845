//! Caffe models (`NetParameter`) and blobs (`BlobProto`, e.g. a `.binaryproto` mean), decoded
//! with `prost` from messages declared here by their field numbers (no `protoc`).
//!
//! Two dialects are read:
//! - **C3D v1.0** (facebookarchive/C3D, the paper's model): `NetParameter.layers = 2` of
//!   `V1LayerParameter { name = 4, type = 5 (enum), blobs = 6 }`; `BlobProto { num = 1,
//!   channels = 2, length = 3, height = 4, width = 5, data = 6 (packed) }`.
//! - **C3D v1.1 / BVLC Caffe**: `NetParameter.layer = 100` of `LayerParameter { name = 1,
//!   type = 2 (string), blobs = 7 }`; `BlobProto { shape = 7 { dim = 1 }, data = 5,
//!   double_data = 8 }` (or the 4-d `num, channels, height, width = 1..4`).
//!
//! Blob bytes are sliced from the file's buffer (`Bytes`), not copied, and decoded once into
//! `f32`. prost has no message size limit; every length it reads is checked against the
//! bytes that remain. What prost builds per message can still outgrow the bytes that encode
//! it (a 2-byte empty layer becomes a ~56-byte struct, a 1-byte `dim` an 8-byte `i64`), so
//! the wire format is walked first ([`check_counts`]): at most [`MAX_LAYERS`] layers and
//! [`MAX_BLOBS`] blobs, and at most [`MAX_DIMS`] dimensions per blob shape. Decoding then
//! allocates at most ~6 MB beyond the file's own bytes.

use prost::bytes::Bytes;
use prost::Message;
use vidlrp_core::HostTensor;

/// `NetParameter`, only the fields that carry layers.
#[derive(Clone, PartialEq, Message)]
struct NetParameter {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    layers: Vec<V1Layer>,
    #[prost(message, repeated, tag = "100")]
    layer: Vec<Layer>,
}

/// C3D v1.0's (and old Caffe's) `V1LayerParameter`.
#[derive(Clone, PartialEq, Message)]
struct V1Layer {
    #[prost(string, optional, tag = "4")]
    name: Option<String>,
    #[prost(int32, optional, tag = "5")]
    kind: Option<i32>,
    #[prost(bytes = "bytes", repeated, tag = "6")]
    blobs: Vec<Bytes>,
}

/// BVLC Caffe's (and C3D v1.1's) `LayerParameter`.
#[derive(Clone, PartialEq, Message)]
struct Layer {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
    #[prost(bytes = "bytes", repeated, tag = "7")]
    blobs: Vec<Bytes>,
}

/// C3D v1.0's 5-d `BlobProto`, data read as the packed payload (the fast path: Caffe writes
/// `data` packed).
#[derive(Clone, PartialEq, Message)]
struct PackedV10 {
    #[prost(int32, optional, tag = "1")]
    num: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    channels: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    length: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    height: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    width: Option<i32>,
    #[prost(bytes = "bytes", optional, tag = "6")]
    data: Option<Bytes>,
}

/// C3D v1.0's 5-d `BlobProto` (any encoding of `data`).
#[derive(Clone, PartialEq, Message)]
struct BlobV10 {
    #[prost(int32, optional, tag = "1")]
    num: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    channels: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    length: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    height: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    width: Option<i32>,
    #[prost(float, repeated, tag = "6")]
    data: Vec<f32>,
}

/// BVLC Caffe's `BlobShape`.
#[derive(Clone, PartialEq, Message)]
struct BlobShape {
    #[prost(int64, repeated, tag = "1")]
    dim: Vec<i64>,
}

/// BVLC Caffe's `BlobProto` with packed `data` read as its payload (the fast path).
#[derive(Clone, PartialEq, Message)]
struct PackedV11 {
    #[prost(bytes = "bytes", optional, tag = "5")]
    data: Option<Bytes>,
    #[prost(message, optional, tag = "7")]
    shape: Option<BlobShape>,
}

/// BVLC Caffe's `BlobProto` (C3D v1.1 with `shape`; any encoding of `data`).
#[derive(Clone, PartialEq, Message)]
struct BlobV11 {
    #[prost(int32, optional, tag = "1")]
    num: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    channels: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    height: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    width: Option<i32>,
    #[prost(float, repeated, tag = "5")]
    data: Vec<f32>,
    #[prost(message, optional, tag = "7")]
    shape: Option<BlobShape>,
    #[prost(double, repeated, tag = "8")]
    double_data: Vec<f64>,
}

/// Layer types that carry weights: V1 enum values and layer type names.
const V1_CONVOLUTION: i32 = 4;
const V1_INNER_PRODUCT: i32 = 14;
const V1_CONVOLUTION3D: i32 = 30;

/// What a Caffe layer with parameters is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaffeLayerKind {
    /// A (3-d) convolution: weight `(out, in, kT, kH, kW)`, bias `(out)`.
    Convolution,
    /// A dense layer: weight `(out, in)`, bias `(out)`.
    InnerProduct,
}

/// One Caffe layer with parameters, in file order.
#[derive(Debug, Clone)]
pub struct CaffeLayer {
    /// The layer's name (`conv1a`, `fc6-1`, ...).
    pub name: String,
    /// Its kind.
    pub kind: CaffeLayerKind,
    /// Its weight, with leading unit dimensions of the blob removed down to the kind's rank.
    pub weight: HostTensor,
    /// Its bias, 1-d, if the layer has one.
    pub bias: Option<HostTensor>,
}

/// A decoded Caffe model: the layers with parameters and the names of those without.
#[derive(Debug, Clone)]
pub struct CaffeModel {
    /// The net's name.
    pub name: Option<String>,
    /// `"v1.0"` (V1 layers, C3D's 5-d blobs) or `"v1.1"` (layer messages).
    pub dialect: &'static str,
    /// Layers with parameters.
    pub layers: Vec<CaffeLayer>,
    /// Layers without parameters (data, ReLU, pooling, dropout, softmax, ...), skipped.
    pub skipped: Vec<String>,
}

/// The most layers a model may have (C3D has about 30).
pub const MAX_LAYERS: usize = 1 << 16;
/// The most blobs, all layers together.
pub const MAX_BLOBS: usize = 1 << 16;
/// The most dimensions of a blob's shape.
pub const MAX_DIMS: usize = 32;

/// Calls `f(field, payload)` for every field of a protobuf message (the payload of a
/// length-delimited field, empty for the others), without decoding or allocating anything.
///
/// **Errors** on truncated varints or payloads, groups and unknown wire types.
fn for_each_field(
    mut b: &[u8],
    mut f: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<(), String> {
    fn varint(b: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first().ok_or("a truncated varint")?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let take = |b: &mut &[u8], n: u64| -> Result<(), String> {
            let n = usize::try_from(n).ok().filter(|&n| n <= b.len());
            *b = &b[n.ok_or("a field runs past the end of its message")?..];
            Ok(())
        };
        match key & 7 {
            0 => {
                varint(&mut b)?;
                f(key >> 3, &[])?;
            }
            1 => {
                take(&mut b, 8)?;
                f(key >> 3, &[])?;
            }
            2 => {
                let n = varint(&mut b)?;
                let whole = b;
                take(&mut b, n)?;
                f(key >> 3, &whole[..whole.len() - b.len()])?;
            }
            5 => {
                take(&mut b, 4)?;
                f(key >> 3, &[])?;
            }
            w => return Err(format!("wire type {w} (groups or unknown)")),
        }
    }
    Ok(())
}

/// The counts a model may have before it is decoded: layers (fields 2 and 100) at most
/// [`MAX_LAYERS`], their blobs (V1 field 6, layer field 7) at most [`MAX_BLOBS`].
///
/// **Errors** naming the count exceeded, or on a malformed wire format.
pub fn check_counts(bytes: &[u8]) -> Result<(), String> {
    let (mut layers, mut blobs) = (0usize, 0usize);
    for_each_field(bytes, |field, payload| {
        if field != 2 && field != 100 {
            return Ok(());
        }
        layers += 1;
        if layers > MAX_LAYERS {
            return Err(format!("more than {MAX_LAYERS} layers"));
        }
        let blob_field = if field == 2 { 6 } else { 7 };
        for_each_field(payload, |f, _| {
            if f == blob_field {
                blobs += 1;
            }
            Ok(())
        })?;
        if blobs > MAX_BLOBS {
            return Err(format!("more than {MAX_BLOBS} blobs"));
        }
        Ok(())
    })
    .map_err(|e| format!("not a Caffe model this reader accepts ({e})"))
}

/// Decodes a `BlobProto` (either dialect) into its dimensions and data.
///
/// **Errors** on bytes that are no blob, a shape of more than [`MAX_DIMS`] dimensions,
/// negative or overflowing dimensions, and data whose length does not match the dimensions.
pub fn decode_blob(bytes: Bytes) -> Result<HostTensor, String> {
    for_each_field(&bytes, |field, payload| {
        if field != 7 {
            return Ok(());
        }
        let mut dims = 0usize;
        for_each_field(payload, |f, p| {
            if f == 1 {
                // One varint, or a packed run of them (each ends with a byte below 0x80).
                dims += if p.is_empty() {
                    1
                } else {
                    p.iter().filter(|&&b| b < 0x80).count()
                };
            }
            Ok(())
        })?;
        if dims > MAX_DIMS {
            return Err(format!("a blob shape of more than {MAX_DIMS} dimensions"));
        }
        Ok(())
    })
    .map_err(|e| format!("not a Caffe BlobProto this reader accepts ({e})"))?;
    let (dims, data) = match fast_blob(&bytes) {
        Some(found) => found,
        None => slow_blob(bytes)?,
    };
    finish_blob(dims, data)
}

/// Little-endian `f32`s of a packed payload; `None` if its length is not a multiple of 4.
fn floats(b: &[u8]) -> Option<Vec<f32>> {
    b.len()
        .is_multiple_of(4)
        .then(|| vidlrp_io::decode_floats(b, vidlrp_io::FloatEncoding::F32))
}

/// The common case, packed `data`, converted in one pass over the payload.
fn fast_blob(bytes: &Bytes) -> Option<(Vec<i64>, Vec<f32>)> {
    if let Ok(PackedV11 {
        data,
        shape: Some(shape),
    }) = PackedV11::decode(bytes.clone())
    {
        return Some((shape.dim, floats(data.as_deref().unwrap_or_default())?));
    }
    let b = PackedV10::decode(bytes.clone()).ok()?;
    let dims = [b.num, b.channels, b.length, b.height, b.width]
        .iter()
        .map(|d| i64::from(d.unwrap_or(1)))
        .collect();
    Some((dims, floats(b.data.as_deref().unwrap_or_default())?))
}

/// Any other encoding (unpacked `data`, `double_data`, BVLC's 4-d fields).
fn slow_blob(bytes: Bytes) -> Result<(Vec<i64>, Vec<f32>), String> {
    let v11 = BlobV11::decode(bytes.clone());
    let (dims, data): (Vec<i64>, Vec<f32>) = match v11 {
        Ok(BlobV11 {
            shape: Some(shape),
            data,
            double_data,
            ..
        }) => {
            let data = if data.is_empty() && !double_data.is_empty() {
                double_data.into_iter().map(|x| x as f32).collect()
            } else {
                data
            };
            (shape.dim, data)
        }
        v11 => match BlobV10::decode(bytes) {
            Ok(b) => (
                [b.num, b.channels, b.length, b.height, b.width]
                    .iter()
                    .map(|d| i64::from(d.unwrap_or(1)))
                    .collect(),
                b.data,
            ),
            Err(e10) => match v11 {
                Ok(b) => (
                    [b.num, b.channels, b.height, b.width]
                        .iter()
                        .map(|d| i64::from(d.unwrap_or(1)))
                        .collect(),
                    b.data,
                ),
                Err(_) => return Err(format!("not a Caffe BlobProto ({e10})")),
            },
        },
    };
    Ok((dims, data))
}

fn finish_blob(dims: Vec<i64>, data: Vec<f32>) -> Result<HostTensor, String> {
    let shape = dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative blob dimension {d}")))
        .collect::<Result<Vec<usize>, String>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("blob dimensions {shape:?} overflow"))?;
    if n != data.len() {
        return Err(format!(
            "blob of shape {shape:?} needs {n} values but holds {}",
            data.len()
        ));
    }
    HostTensor::new(shape, data).map_err(|e| e.to_string())
}

/// Removes leading unit dimensions until `rank` remain (never removes others).
fn squeeze_to(t: HostTensor, rank: usize, what: &str) -> Result<HostTensor, String> {
    let s = t.shape().to_vec();
    let lead = s.len().saturating_sub(rank);
    if s.len() < rank || s[..lead].iter().any(|&d| d != 1) {
        return Err(format!(
            "{what} has blob shape {s:?}; expected {rank} dimensions after leading ones"
        ));
    }
    t.reshape(s[lead..].to_vec()).map_err(|e| e.to_string())
}

fn layer_from_blobs(
    name: &str,
    kind: CaffeLayerKind,
    blobs: Vec<Bytes>,
) -> Result<CaffeLayer, String> {
    if blobs.len() > 2 {
        return Err(format!(
            "layer {name} has {} blobs; expected a weight and a bias",
            blobs.len()
        ));
    }
    let mut it = blobs.into_iter();
    let rank = match kind {
        CaffeLayerKind::Convolution => 5,
        CaffeLayerKind::InnerProduct => 2,
    };
    let weight = decode_blob(it.next().expect("non-empty"))
        .map_err(|e| format!("layer {name}, weight: {e}"))
        .and_then(|t| squeeze_to(t, rank, &format!("layer {name}'s weight")))?;
    let bias = it
        .next()
        .map(|b| {
            decode_blob(b)
                .map_err(|e| format!("layer {name}, bias: {e}"))
                .and_then(|t| squeeze_to(t, 1, &format!("layer {name}'s bias")))
        })
        .transpose()?;
    if let Some(b) = &bias {
        if b.shape()[0] != weight.shape()[0] {
            return Err(format!(
                "layer {name}: bias has {} values for {} outputs",
                b.shape()[0],
                weight.shape()[0]
            ));
        }
    }
    Ok(CaffeLayer {
        name: name.to_string(),
        kind,
        weight,
        bias,
    })
}

/// Decodes a Caffe model.
///
/// **Errors** on bytes that are no `NetParameter`, a net without layers, unnamed or duplicate
/// layer names, layers with parameters of a type that is neither a convolution nor an inner
/// product, and blobs of the wrong size.
pub fn decode_model(bytes: Bytes) -> Result<CaffeModel, String> {
    check_counts(&bytes)?;
    let net = NetParameter::decode(bytes).map_err(|e| format!("not a Caffe model ({e})"))?;
    let mut model = CaffeModel {
        name: net.name,
        dialect: if net.layer.is_empty() { "v1.0" } else { "v1.1" },
        layers: Vec::new(),
        skipped: Vec::new(),
    };
    if net.layers.is_empty() && net.layer.is_empty() {
        return Err("not a Caffe model (no layers)".into());
    }
    if !net.layers.is_empty() && !net.layer.is_empty() {
        return Err("the model mixes V1 layers (field 2) and layer messages (field 100)".into());
    }
    let mut names = std::collections::BTreeSet::new();
    let v1 = net.layers.into_iter().map(|l| {
        let kind = match l.kind {
            Some(V1_CONVOLUTION | V1_CONVOLUTION3D) => Ok(CaffeLayerKind::Convolution),
            Some(V1_INNER_PRODUCT) => Ok(CaffeLayerKind::InnerProduct),
            other => Err(format!(
                "type {}",
                other.map_or("unset".into(), |k| k.to_string())
            )),
        };
        (l.name, kind, l.blobs)
    });
    let v11 = net.layer.into_iter().map(|l| {
        let kind = match l.kind.as_deref() {
            Some("Convolution" | "Convolution3D") => Ok(CaffeLayerKind::Convolution),
            Some("InnerProduct") => Ok(CaffeLayerKind::InnerProduct),
            other => Err(format!("type {}", other.unwrap_or("unset"))),
        };
        (l.name, kind, l.blobs)
    });
    for (name, kind, blobs) in v1.chain(v11) {
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or("a layer has no name")?;
        if !names.insert(name.clone()) {
            return Err(format!("duplicate layer name {name}"));
        }
        if blobs.is_empty() {
            model.skipped.push(name);
            continue;
        }
        let kind = kind.map_err(|t| {
            format!(
                "layer {name} ({t}) has parameters but is neither a convolution nor an inner \
                 product; this is not a C3D model this reader knows"
            )
        })?;
        model.layers.push(layer_from_blobs(&name, kind, blobs)?);
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_of_both_dialects_decode() {
        let v10 = BlobV10 {
            num: Some(1),
            channels: Some(2),
            length: Some(1),
            height: Some(1),
            width: Some(3),
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let t = decode_blob(Bytes::from(v10.encode_to_vec())).unwrap();
        assert_eq!(t.shape(), &[1, 2, 1, 1, 3]);
        let v11 = BlobV11 {
            shape: Some(BlobShape { dim: vec![2, 3] }),
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ..Default::default()
        };
        let t = decode_blob(Bytes::from(v11.encode_to_vec())).unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.data(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    /// Messages that would make prost build far more than their bytes: many empty layers,
    /// many empty blobs, a long packed shape (#30).
    #[test]
    fn amplifying_messages_are_refused_before_decoding() {
        // 2^16 + 1 empty V1 layers (2 bytes each).
        let layers: Vec<u8> = std::iter::repeat_n([0x12u8, 0x00], MAX_LAYERS + 1)
            .flatten()
            .collect();
        let e = decode_model(Bytes::from(layers)).unwrap_err();
        assert!(e.contains("more than 65536 layers"), "{e}");
        // One layer of 2^16 + 1 empty blobs.
        let mut inner = vec![0x22u8, 0x01, b'x'];
        inner.extend(std::iter::repeat_n([0x32u8, 0x00], MAX_BLOBS + 1).flatten());
        let mut net = vec![0x12u8];
        let mut n = inner.len();
        while n >= 0x80 {
            net.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        net.push(n as u8);
        net.extend(inner);
        let e = decode_model(Bytes::from(net)).unwrap_err();
        assert!(e.contains("more than 65536 blobs"), "{e}");
        // A shape of 33 dimensions.
        let wide = BlobV11 {
            shape: Some(BlobShape { dim: vec![1; 33] }),
            data: vec![1.0],
            ..Default::default()
        };
        let e = decode_blob(Bytes::from(wide.encode_to_vec())).unwrap_err();
        assert!(e.contains("more than 32 dimensions"), "{e}");
        // Truncated wire format.
        assert!(check_counts(&[0x12, 0x05, 0x00]).is_err());
    }

    #[test]
    fn wrong_sizes_and_negative_dims_are_errors() {
        let short = BlobV11 {
            shape: Some(BlobShape { dim: vec![2, 3] }),
            data: vec![1.0; 5],
            ..Default::default()
        };
        let e = decode_blob(Bytes::from(short.encode_to_vec())).unwrap_err();
        assert!(e.contains("needs 6 values but holds 5"), "{e}");
        let neg = BlobV11 {
            shape: Some(BlobShape { dim: vec![-2] }),
            ..Default::default()
        };
        assert!(decode_blob(Bytes::from(neg.encode_to_vec())).is_err());
        let huge = BlobV11 {
            shape: Some(BlobShape {
                dim: vec![i64::MAX, i64::MAX],
            }),
            ..Default::default()
        };
        assert!(decode_blob(Bytes::from(huge.encode_to_vec())).is_err());
    }
}
