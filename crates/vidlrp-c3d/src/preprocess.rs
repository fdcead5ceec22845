//! Preprocessing presets (method.md §1) and the z^B input bounds that follow from them.

/// Names of the presets.
pub const PRESET_NAMES: [&str; 2] = ["caffe", "port"];

/// A preprocessing preset: how frames become network input, and the range of each channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The preset's name.
    pub name: &'static str,
    /// Channel order of the network input (`"BGR"` or `"RGB"`).
    pub channel_order: &'static str,
    /// Mean subtracted per input channel (in `channel_order`), on the 0..255 scale.
    pub mean: [f32; 3],
    /// Frame size `[H, W]` after resizing.
    pub resize: [usize; 2],
    /// Crop origin `[row, column]` and size `[H, W]`.
    pub crop: ([usize; 2], [usize; 2]),
}

impl Preprocess {
    /// The original Caffe C3D: BGR, resize 128x171, mean (B 90.25, G 97.66, R 101.41),
    /// centre crop 112x112 at rows 8..120, columns 29..141.
    pub fn caffe() -> Self {
        Self {
            name: "caffe",
            channel_order: "BGR",
            mean: [90.25, 97.66, 101.41],
            resize: [128, 171],
            crop: ([8, 29], [112, 112]),
        }
    }

    /// The PyTorch port's `predict.py`: RGB 0..255, resize 112x200, columns 44..156, no mean.
    pub fn port() -> Self {
        Self {
            name: "port",
            channel_order: "RGB",
            mean: [0.0; 3],
            resize: [112, 200],
            crop: ([0, 44], [112, 112]),
        }
    }

    /// A preset by name (`caffe` or `port`).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "caffe" => Some(Self::caffe()),
            "port" => Some(Self::port()),
            _ => None,
        }
    }

    /// The smallest value a preprocessed pixel can take, per channel: `0 - mean_c`.
    pub fn low(&self) -> Vec<f32> {
        self.mean.iter().map(|m| -m).collect()
    }

    /// The largest value, per channel: `255 - mean_c`.
    pub fn high(&self) -> Vec<f32> {
        self.mean.iter().map(|m| 255.0 - m).collect()
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
}
