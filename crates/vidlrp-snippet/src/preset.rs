//! Preprocessing presets (method.md §1) and the z^B input bounds that follow from them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use vidlrp_core::HostTensor;

/// The channel order of the network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    /// Red, green, blue (the PyTorch port).
    Rgb,
    /// Blue, green, red (Caffe, through OpenCV).
    Bgr,
}

impl ChannelOrder {
    /// The RGB channel that network channel `c` holds.
    ///
    /// ```
    /// use vidlrp_snippet::ChannelOrder;
    /// assert_eq!(ChannelOrder::Bgr.rgb_channel(0), 2);
    /// assert_eq!(ChannelOrder::Rgb.rgb_channel(0), 0);
    /// ```
    pub fn rgb_channel(self, c: usize) -> usize {
        match self {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => 2 - c,
        }
    }
}

impl fmt::Display for ChannelOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        })
    }
}

/// A preprocessing preset: how frames become network input, and the range of each channel.
///
/// ```
/// use vidlrp_snippet::Preprocess;
/// let p: Preprocess = "caffe".parse().unwrap();
/// assert_eq!(p, Preprocess::caffe());
/// // The z^B box of the preset: 0 - mean .. 255 - mean per channel.
/// assert_eq!(p.low()[0], -90.25);
/// assert!("opencv".parse::<Preprocess>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The preset's name.
    pub name: &'static str,
    /// Channel order of the network input.
    pub channel_order: ChannelOrder,
    /// Mean subtracted per input channel (in `channel_order`), on the 0..255 scale.
    pub mean: [f32; 3],
    /// Divisor per input channel after the mean, on the 0..255 scale (1 for caffe and port):
    /// an input value is `(v - mean_c) / std_c` for a pixel value `v` in 0..255.
    pub std: [f32; 3],
    /// Frame size `[H, W]` after resizing.
    pub resize: [usize; 2],
    /// Crop origin `[row, column]` and size `[H, W]`.
    pub crop: ([usize; 2], [usize; 2]),
    /// A per-voxel mean `[3, T, crop_h, crop_w]` (network channel order) subtracted instead of
    /// `mean`: Caffe's `.binaryproto` mean, cropped like the frames ([`Preprocess::with_voxel_mean`]).
    pub voxel_mean: Option<Arc<HostTensor>>,
}

impl Preprocess {
    /// The names [`FromStr`] accepts.
    pub const NAMES: [&'static str; 3] = ["caffe", "port", "kinetics"];

    /// The original Caffe C3D: BGR, resize 128x171, mean (B 90.25, G 97.66, R 101.41),
    /// centre crop 112x112 at rows 8..120, columns 29..141.
    pub fn caffe() -> Self {
        Self {
            name: "caffe",
            channel_order: ChannelOrder::Bgr,
            mean: [90.25, 97.66, 101.41],
            std: [1.0; 3],
            resize: [128, 171],
            crop: ([8, 29], [112, 112]),
            voxel_mean: None,
        }
    }

    /// The PyTorch port's `predict.py`: RGB 0..255, resize 112x200, columns 44..156, no mean.
    pub fn port() -> Self {
        Self {
            name: "port",
            channel_order: ChannelOrder::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: [112, 200],
            crop: ([0, 44], [112, 112]),
            voxel_mean: None,
        }
    }

    /// torchvision's video models trained on Kinetics-400 (r3d_18, mc3_18, r2plus1d_18): RGB
    /// on 0..1, resize 128x171, centre crop 112x112 (rows 8..120, columns 30..142, as
    /// torchvision rounds the offset 29.5), mean (0.43216, 0.394666, 0.37645) and std
    /// (0.22803, 0.22145, 0.216989), here scaled by 255 to act on 0..255 pixels: `(v / 255 - m)
    /// / s = (v - 255 m) / (255 s)` (equal up to f32 rounding).
    pub fn kinetics() -> Self {
        let scaled = |v: [f64; 3]| v.map(|x| (255.0 * x) as f32);
        Self {
            name: "kinetics",
            channel_order: ChannelOrder::Rgb,
            mean: scaled([0.43216, 0.394666, 0.37645]),
            std: scaled([0.22803, 0.22145, 0.216989]),
            resize: [128, 171],
            crop: ([8, 30], [112, 112]),
            voxel_mean: None,
        }
    }

    /// The network input's `[H, W]` (the crop size).
    pub fn input_size(&self) -> [usize; 2] {
        self.crop.1
    }

    /// The preset for a square input of `size` pixels instead of 112: the resize and the crop
    /// origin scale by `size / 112` (rounded), the crop becomes `size x size`, channel order and
    /// means stay. Written `caffe@64`; `size` 112 gives the preset itself.
    ///
    /// ```
    /// use vidlrp_snippet::Preprocess;
    /// let p = Preprocess::caffe().at_size(64).unwrap();
    /// assert_eq!((p.resize, p.crop), ([73, 98], ([4, 17], [64, 64])));
    /// assert_eq!(p.to_string(), "caffe@64");
    /// assert_eq!("caffe@64".parse::<Preprocess>().unwrap(), p);
    /// assert_eq!(Preprocess::caffe().at_size(112).unwrap(), Preprocess::caffe());
    /// ```
    ///
    /// **Errors** if `size` is below 16 or the preset carries a per-voxel mean (which is fixed
    /// to Caffe's 128x171 frames).
    pub fn at_size(mut self, size: usize) -> Result<Self, String> {
        let base = self.crop.1[0];
        if size == base {
            return Ok(self);
        }
        if size < 16 {
            return Err(format!("input size {size} is below 16 pixels"));
        }
        if self.voxel_mean.is_some() {
            return Err("a per-voxel mean fixes the input at 112x112".into());
        }
        let scale = |v: usize| ((v * size) as f64 / base as f64).round() as usize;
        self.resize = self.resize.map(scale).map(|v| v.max(size));
        let [rh, rw] = self.resize;
        self.crop = ([(rh - size) / 2, (rw - size) / 2], [size, size]);
        Ok(self)
    }

    /// The preset with a per-voxel mean (Caffe's `.binaryproto`, `[1, 3, T, H, W]` or
    /// `[3, T, H, W]` at the resized size `H x W`, in the network's channel order) subtracted
    /// instead of the per-channel means: the mean is cropped at the frames' crop offsets.
    ///
    /// ```
    /// use vidlrp_core::HostTensor;
    /// use vidlrp_snippet::Preprocess;
    /// let mean = HostTensor::new(vec![1, 3, 16, 128, 171], vec![100.0; 3 * 16 * 128 * 171]).unwrap();
    /// let p = Preprocess::caffe().with_voxel_mean(&mean).unwrap();
    /// assert_eq!(p.low().len(), 3 * 16 * 112 * 112); // one z^B bound per input voxel
    /// assert_eq!(p.high()[0], 155.0);
    /// assert!(Preprocess::port().with_voxel_mean(&mean).is_err()); // resized to 112x200
    /// ```
    ///
    /// **Errors** if the mean's shape does not match three channels and the resize.
    pub fn with_voxel_mean(mut self, mean: &HostTensor) -> Result<Self, String> {
        let s = mean.shape();
        let s4 = match s.len() {
            5 if s[0] == 1 => &s[1..],
            4 => s,
            _ => {
                return Err(format!(
                    "the mean has shape {s:?}; expected (1, 3, T, H, W) or (3, T, H, W)"
                ))
            }
        };
        let ([top, left], [ch, cw]) = self.crop;
        if s4[0] != 3 || s4[2..] != self.resize {
            return Err(format!(
                "the mean has shape {s:?}; the {} preset needs 3 channels at its resized size {}x{}",
                self.name, self.resize[0], self.resize[1]
            ));
        }
        let t_n = s4[1];
        let (h, w) = (s4[2], s4[3]);
        let src = mean.data();
        let mut data = Vec::with_capacity(3 * t_n * ch * cw);
        for c in 0..3 {
            for t in 0..t_n {
                for y in 0..ch {
                    let row = ((c * t_n + t) * h + top + y) * w + left;
                    data.extend_from_slice(&src[row..row + cw]);
                }
            }
        }
        let cropped = HostTensor::new(vec![3, t_n, ch, cw], data).map_err(|e| e.to_string())?;
        self.voxel_mean = Some(Arc::new(cropped));
        Ok(self)
    }

    /// The frames a clip must have under this preset: the per-voxel mean's length, if any.
    pub fn frames(&self) -> Option<usize> {
        self.voxel_mean.as_ref().map(|m| m.shape()[1])
    }

    /// The smallest value a preprocessed pixel can take: `l_c = (0 - mean_c) / std_c` per
    /// channel, or `l_i = 0 - mean_i` per input voxel under a per-voxel mean.
    pub fn low(&self) -> Vec<f32> {
        match &self.voxel_mean {
            Some(m) => m.data().iter().map(|m| -m).collect(),
            None => (0..3).map(|c| -self.mean[c] / self.std[c]).collect(),
        }
    }

    /// The largest value: `h_c = (255 - mean_c) / std_c` per channel, or `255 - mean_i` per
    /// input voxel.
    pub fn high(&self) -> Vec<f32> {
        match &self.voxel_mean {
            Some(m) => m.data().iter().map(|m| 255.0 - m).collect(),
            None => (0..3)
                .map(|c| (255.0 - self.mean[c]) / self.std[c])
                .collect(),
        }
    }
}

/// An unknown preset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown preprocessing preset {0:?} (known: caffe, port, kinetics; NAME@SIZE for a square input of SIZE pixels, e.g. caffe@64)")]
pub struct UnknownPreset(pub String);

impl FromStr for Preprocess {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Self, UnknownPreset> {
        let (name, size) = match s.split_once('@') {
            Some((n, z)) => (n, Some(z)),
            None => (s, None),
        };
        let preset = match name {
            "caffe" => Self::caffe(),
            "port" => Self::port(),
            "kinetics" => Self::kinetics(),
            _ => return Err(UnknownPreset(s.to_string())),
        };
        match size {
            None => Ok(preset),
            Some(z) => z
                .parse()
                .ok()
                .and_then(|z| preset.at_size(z).ok())
                .ok_or_else(|| UnknownPreset(s.to_string())),
        }
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.crop.1 {
            [112, 112] => f.write_str(self.name),
            [h, _] => write!(f, "{}@{h}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caffe_bounds_are_shifted_by_the_mean() {
        let p = Preprocess::caffe();
        assert_eq!(p.low(), vec![-90.25, -97.66, -101.41]);
        assert_eq!(p.high(), vec![164.75, 157.34, 153.59]);
        assert_eq!(Preprocess::port().low(), vec![0.0; 3]);
        assert_eq!(Preprocess::port().high(), vec![255.0; 3]);
    }

    #[test]
    fn kinetics_bounds_are_torchvisions_normalisation_of_0_and_1() {
        let p = Preprocess::kinetics();
        let (m, s) = (
            [0.43216f64, 0.394666, 0.37645],
            [0.22803f64, 0.22145, 0.216989],
        );
        for c in 0..3 {
            let (lo, hi) = (-m[c] / s[c], (1.0 - m[c]) / s[c]);
            assert!((f64::from(p.low()[c]) - lo).abs() < 1e-5, "{c}");
            assert!((f64::from(p.high()[c]) - hi).abs() < 1e-5, "{c}");
        }
        assert_eq!(p.channel_order, ChannelOrder::Rgb);
        assert_eq!(p.crop, ([8, 30], [112, 112]));
        assert_eq!(p.clone().at_size(56).unwrap().to_string(), "kinetics@56");
        // Preprocessing a white and a black frame gives the bounds, in network channel order.
        for (v, want) in [(255u8, p.high()), (0u8, p.low())] {
            let frame = crate::source::RgbFrame {
                width: 171,
                height: 128,
                data: vec![v; 128 * 171 * 3],
            };
            let x = crate::preprocess::preprocess(&[frame], &p).unwrap();
            let plane = 112 * 112;
            for (c, (got, w)) in x.data().chunks(plane).zip(&want).enumerate() {
                assert!(got.iter().all(|&g| (g - w).abs() < 1e-5), "{v}: {c}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for n in Preprocess::NAMES {
            assert_eq!(n.parse::<Preprocess>().unwrap().to_string(), n);
        }
    }
}
