//! vidlrp-viz: pictures of relevance: per-frame heatmaps in Zennit's colour maps, overlays on
//! the input frames, contact sheets like the paper's Fig. 1/6, animated GIFs.

mod colormap;
mod font;
pub mod plots;

pub use colormap::{Palette, COLORMAPS};
pub use font::{draw_text, text_width};

use std::path::Path;

use image::{Rgb, RgbImage};
use vidlrp_core::HostTensor;
use vidlrp_snippet::Preprocess;

/// How relevance values map to `[0, 1]` before the colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Norm {
    /// `(R / max|R| + 1) / 2`: 0 maps to the centre of the colour map (Zennit `symmetric=True`).
    #[default]
    Symmetric,
    /// `|R| / max|R|`.
    Absolute,
    /// `(R - min R) / (max R - min R)` (Zennit's default, unaligned).
    Unaligned,
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "symmetric" => Ok(Norm::Symmetric),
            "absolute" => Ok(Norm::Absolute),
            "unaligned" => Ok(Norm::Unaligned),
            other => Err(format!(
                "unknown normalisation {other:?} (symmetric, absolute, unaligned)"
            )),
        }
    }
}

/// Errors of writing pictures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VizError {
    /// Bad input shape or parameter.
    #[error("{0}")]
    Argument(String),
    /// The image could not be written.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = VizError> = std::result::Result<T, E>;

/// Frame heatmaps `(T, H, W)` from relevance `[C, T, H, W]` or `[1, C, T, H, W]`: the sum over
/// colour channels, `R_{t,p} = sum_c R_{c,t,p}`.
pub fn frame_relevance(r: &HostTensor) -> Result<(usize, usize, usize, Vec<f32>)> {
    let s = r.shape();
    let s = match s.len() {
        4 => s,
        5 if s[0] == 1 => &s[1..],
        _ => {
            return Err(VizError::Argument(format!(
                "relevance must be [C,T,H,W] or [1,C,T,H,W], got {s:?}"
            )))
        }
    };
    let (c, t, h, w) = (s[0], s[1], s[2], s[3]);
    let plane = t * h * w;
    let mut out = vec![0f32; plane];
    for ch in 0..c {
        for (o, v) in out.iter_mut().zip(&r.data()[ch * plane..(ch + 1) * plane]) {
            *o += v;
        }
    }
    Ok((t, h, w, out))
}

/// Normalises all values to `[0, 1]` with one scale for the whole clip, so frames compare.
pub fn normalise(values: &[f32], norm: Norm) -> Vec<f32> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let m = lo.abs().max(hi.abs());
    values
        .iter()
        .map(|&v| match norm {
            Norm::Symmetric if m > 0.0 => (v / m + 1.0) / 2.0,
            Norm::Symmetric => 0.5,
            Norm::Absolute if m > 0.0 => v.abs() / m,
            Norm::Absolute => 0.0,
            Norm::Unaligned if hi > lo => (v - lo) / (hi - lo),
            Norm::Unaligned => 0.0,
        })
        .collect()
}

/// One heatmap image per frame.
pub fn heatmaps(r: &HostTensor, norm: Norm, palette: &Palette) -> Result<Vec<RgbImage>> {
    let (t, h, w, values) = frame_relevance(r)?;
    let v = normalise(&values, norm);
    Ok((0..t)
        .map(|f| {
            RgbImage::from_fn(w as u32, h as u32, |x, y| {
                Rgb(palette.color(v[(f * h + y as usize) * w + x as usize]))
            })
        })
        .collect())
}

/// The network input `[3, T, H, W]` (or `[1, 3, T, H, W]`) as viewable RGB frames: the
/// preset's mean added back and channels put in RGB order.
pub fn input_frames(x: &HostTensor, preset: &Preprocess) -> Result<Vec<RgbImage>> {
    let s = x.shape();
    let s = if s.len() == 5 && s[0] == 1 {
        &s[1..]
    } else {
        s
    };
    if s.len() != 4 || s[0] != 3 {
        return Err(VizError::Argument(format!(
            "input must be [3,T,H,W], got {:?}",
            x.shape()
        )));
    }
    let (t, h, w) = (s[1], s[2], s[3]);
    let plane = t * h * w;
    Ok((0..t)
        .map(|f| {
            RgbImage::from_fn(w as u32, h as u32, |px, py| {
                let mut out = [0u8; 3];
                for c in 0..3 {
                    let v = x.data()[c * plane + (f * h + py as usize) * w + px as usize]
                        * preset.std[c]
                        + preset.mean[c];
                    out[preset.channel_order.rgb_channel(c)] = v.round().clamp(0.0, 255.0) as u8;
                }
                Rgb(out)
            })
        })
        .collect())
}

/// `alpha` of the heatmap over a grey version of the frame.
pub fn overlay(frame: &RgbImage, heat: &RgbImage, alpha: f32) -> RgbImage {
    RgbImage::from_fn(heat.width(), heat.height(), |x, y| {
        let f = frame
            .get_pixel(x.min(frame.width() - 1), y.min(frame.height() - 1))
            .0;
        let grey = 0.299 * f32::from(f[0]) + 0.587 * f32::from(f[1]) + 0.114 * f32::from(f[2]);
        let hp = heat.get_pixel(x, y).0;
        Rgb([0, 1, 2].map(|c| (alpha * f32::from(hp[c]) + (1.0 - alpha) * grey).round() as u8))
    })
}

/// A grid of labelled rows of equally sized frames, each column labelled `t=<index>`.
///
/// `rows` are `(label, frames)`, a label of one or more lines (`\n`: e.g. the method, then the
/// explained class and its logit), centred on its row; `columns` the label of each column
/// (e.g. source frame indices).
pub fn contact_sheet(
    rows: &[(String, Vec<RgbImage>)],
    columns: &[String],
    scale: u32,
) -> Result<RgbImage> {
    let Some((_, first)) = rows.first() else {
        return Err(VizError::Argument("no rows".into()));
    };
    let Some(f0) = first.first() else {
        return Err(VizError::Argument("no frames".into()));
    };
    let (fw, fh) = (f0.width(), f0.height());
    let cols = rows.iter().map(|r| r.1.len()).max().unwrap_or(0) as u32;
    let gap = 2;
    let label_w = rows
        .iter()
        .flat_map(|r| r.0.lines())
        .map(|l| text_width(l, scale))
        .max()
        .unwrap_or(0)
        + 8;
    let line_h = 9 * scale;
    let header = 7 * scale + 8;
    let width = label_w + cols * (fw + gap);
    let height = header + rows.len() as u32 * (fh + gap);
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (j, label) in columns.iter().enumerate().take(cols as usize) {
        let x = label_w + j as u32 * (fw + gap) + (fw.saturating_sub(text_width(label, scale))) / 2;
        draw_text(&mut img, x, 4, label, scale, [0, 0, 0]);
    }
    for (i, (label, frames)) in rows.iter().enumerate() {
        let y0 = header + i as u32 * (fh + gap);
        let lines = label.lines().count() as u32;
        let top = (y0 + fh / 2).saturating_sub((lines * line_h).saturating_sub(2 * scale) / 2);
        for (k, line) in label.lines().enumerate() {
            draw_text(&mut img, 4, top + k as u32 * line_h, line, scale, [0, 0, 0]);
        }
        for (j, f) in frames.iter().enumerate() {
            if (f.width(), f.height()) != (fw, fh) {
                return Err(VizError::Argument(
                    "all frames of a contact sheet must have one size".into(),
                ));
            }
            image::imageops::replace(
                &mut img,
                f,
                i64::from(label_w + j as u32 * (fw + gap)),
                i64::from(y0),
            );
        }
    }
    Ok(img)
}

fn write_err(path: &Path, e: impl std::fmt::Display) -> VizError {
    VizError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes a PNG atomically.
pub fn write_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| write_err(path, e))?;
    vidlrp_io::atomic_write(path, |w| std::io::Write::write_all(w, &bytes))
        .map_err(|e| write_err(path, e))
}

/// Writes an endlessly looping animated GIF, `delay_ms` per frame, atomically.
pub fn write_gif(path: &Path, frames: &[RgbImage], delay_ms: u32) -> Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)
            .map_err(|e| write_err(path, e))?;
        for f in frames {
            let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
            let frame = image::Frame::from_parts(
                rgba,
                0,
                0,
                image::Delay::from_numer_denom_ms(delay_ms, 1),
            );
            enc.encode_frame(frame).map_err(|e| write_err(path, e))?;
        }
    }
    vidlrp_io::atomic_write(path, |w| std::io::Write::write_all(w, &bytes))
        .map_err(|e| write_err(path, e))
}

/// Enlarges an image by an integer factor (nearest neighbour), for legible small frames.
pub fn upscale(img: &RgbImage, factor: u32) -> RgbImage {
    image::imageops::resize(
        img,
        img.width() * factor,
        img.height() * factor,
        image::imageops::FilterType::Nearest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palettes_match_zennit_exactly() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/colormaps.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let palettes = json["palettes"].as_object().unwrap();
        assert_eq!(palettes.len(), COLORMAPS.len());
        for (name, want) in palettes {
            let p = Palette::new(name).unwrap();
            for (i, rgb) in want.as_array().unwrap().iter().enumerate() {
                let rgb: Vec<u8> = rgb
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u8)
                    .collect();
                assert_eq!(p.0[i].to_vec(), rgb, "{name}[{i}]");
            }
        }
        assert!(Palette::new("nonsense").is_err());
        assert_eq!(
            Palette::new("000,fff").unwrap(),
            Palette::new("gray").unwrap()
        );
    }

    #[test]
    fn symmetric_norm_puts_zero_at_the_centre() {
        let v = normalise(&[-2.0, 0.0, 1.0, 2.0], Norm::Symmetric);
        assert_eq!(v, vec![0.0, 0.5, 0.75, 1.0]);
        assert_eq!(normalise(&[-2.0, 1.0], Norm::Absolute), vec![1.0, 0.5]);
        assert_eq!(
            normalise(&[-2.0, 0.0, 2.0], Norm::Unaligned),
            vec![0.0, 0.5, 1.0]
        );
        let bwr = Palette::new("bwr").unwrap();
        // 0.5 lands on entry 127 (as in Zennit's imgify), just short of the white centre at 0x80.
        assert_eq!(bwr.color(0.5), bwr.0[127]);
        assert_eq!(bwr.0[128], [255, 255, 255]);
        assert_eq!(bwr.color(1.0), [255, 0, 0]);
        assert_eq!(bwr.color(0.0), [0, 0, 255]);
    }
}
