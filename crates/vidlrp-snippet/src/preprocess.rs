//! The preprocessing presets of method.md §1 applied to decoded RGB frames.
//!
//! Resizing is bilinear with half-pixel centres and edge clamping (OpenCV's `INTER_LINEAR`,
//! which the original C3D pipeline used), kept in `f32` (no rounding to 8 bits):
//!
//! ```text
//! u = (x + 0.5) W_in / W_out - 0.5, clamped to [0, W_in - 1]; x0 = floor(u), x1 = min(x0 + 1, W_in - 1)
//! out(y, x) = (1 - b)((1 - a) in(y0, x0) + a in(y0, x1)) + b((1 - a) in(y1, x0) + a in(y1, x1))
//! ```
//! with `a = u - x0` and `b`, `y0`, `y1` likewise along rows.

use crate::Preprocess;
use vidlrp_core::HostTensor;

use crate::RgbFrame;

fn axis_weights(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|x| {
            let u = ((x as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let x0 = u.floor() as usize;
            let x1 = (x0 + 1).min(n_in - 1);
            (x0, x1, (u - x0 as f64) as f32)
        })
        .collect()
}

/// Resizes one channel plane `src` (`h x w`, row-major) to `out_h x out_w`.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let (ry, rx) = (axis_weights(h, out_h), axis_weights(w, out_w));
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, b) in &ry {
        for &(x0, x1, a) in &rx {
            let top = (1.0 - a) * src[y0 * w + x0] + a * src[y0 * w + x1];
            let bottom = (1.0 - a) * src[y1 * w + x0] + a * src[y1 * w + x1];
            out.push((1.0 - b) * top + b * bottom);
        }
    }
    out
}

/// Writes into `dst` (`ch x cw`, row-major) the window of channel `channel` of `f`
/// resized by `resize_bilinear` whose rows are `ry` and columns `rx` (the axis weights of
/// the window only): the same bits the whole resized plane has there, reading the frame's
/// bytes in place.
fn resized_window(
    f: &RgbFrame,
    channel: usize,
    ry: &[(usize, usize, f32)],
    rx: &[(usize, usize, f32)],
    dst: &mut [f32],
) {
    let w = f.width;
    let px = |y: usize, x: usize| f32::from(f.data[3 * (y * w + x) + channel]);
    for (row, &(y0, y1, b)) in dst.chunks_exact_mut(rx.len()).zip(ry) {
        for (out, &(x0, x1, a)) in row.iter_mut().zip(rx) {
            let top = (1.0 - a) * px(y0, x0) + a * px(y0, x1);
            let bottom = (1.0 - a) * px(y1, x0) + a * px(y1, x1);
            *out = (1.0 - b) * top + b * bottom;
        }
    }
}

/// Preprocesses frames with a preset: resize to `preset.resize`, crop, reorder channels to
/// `preset.channel_order`, subtract `preset.mean` (or the per-voxel `preset.voxel_mean`) and
/// divide by `preset.std`. Only the crop's pixels of the resized frame are computed (each
/// output pixel depends on its own position alone: the same bits as resizing all of it).
/// Returns `[3, T, crop_h, crop_w]`.
///
/// **Errors** if a per-voxel mean has another number of frames than `frames`.
pub fn preprocess(frames: &[RgbFrame], preset: &Preprocess) -> Result<HostTensor, String> {
    if let Some(t) = preset.frames() {
        if t != frames.len() {
            return Err(format!(
                "the per-voxel mean has {t} frames but the snippet has {}; snippets must have {t} frames",
                frames.len()
            ));
        }
    }
    let [rh, rw] = preset.resize;
    let ([top, left], [ch, cw]) = preset.crop;
    let t_n = frames.len();
    let mut data = vec![0.0f32; 3 * t_n * ch * cw];
    // Source RGB channel of each output channel.
    let order: [usize; 3] = [0, 1, 2].map(|c| preset.channel_order.rgb_channel(c));
    // The window's axis weights, for the frame size they were made for (frames of one video
    // share it).
    let mut weights: Option<((usize, usize), Vec<_>, Vec<_>)> = None;
    for (t, f) in frames.iter().enumerate() {
        let size = (f.height, f.width);
        if weights.as_ref().is_none_or(|w| w.0 != size) {
            let window = |n_in, n_out, start: usize, len| -> Result<Vec<_>, String> {
                axis_weights(n_in, n_out)
                    .get(start..start + len)
                    .map(<[_]>::to_vec)
                    .ok_or_else(|| {
                        format!(
                            "the crop {:?} at {:?} leaves the resized frame {rh}x{rw}",
                            preset.crop.1, preset.crop.0
                        )
                    })
            };
            weights = Some((
                size,
                window(f.height, rh, top, ch)?,
                window(f.width, rw, left, cw)?,
            ));
        }
        let (_, ry, rx) = weights.as_ref().expect("set above");
        for (c, &src_c) in order.iter().enumerate() {
            let at = (c * t_n + t) * ch * cw..(c * t_n + t + 1) * ch * cw;
            let dst = &mut data[at.clone()];
            if size == (rh, rw) {
                // Not resized: the crop's bytes as they are.
                for (y, row) in dst.chunks_exact_mut(cw).enumerate() {
                    for (x, v) in row.iter_mut().enumerate() {
                        *v = f32::from(f.data[3 * ((top + y) * f.width + left + x) + src_c]);
                    }
                }
            } else {
                resized_window(f, src_c, ry, rx, dst);
            }
            let std = preset.std[c];
            match &preset.voxel_mean {
                Some(m) => {
                    for (v, m) in dst.iter_mut().zip(&m.data()[at]) {
                        *v = (*v - m) / std;
                    }
                }
                None => {
                    for v in dst.iter_mut() {
                        *v = (*v - preset.mean[c]) / std;
                    }
                }
            }
        }
    }
    HostTensor::new(vec![3, t_n, ch, cw], data).map_err(|e| e.to_string())
}
