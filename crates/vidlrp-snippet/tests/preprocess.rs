//! `preprocess` computes only the crop's pixels of the resized frame; they must be the bits
//! of resizing the whole frame (`resize_bilinear`, the definition) and cropping it.

use proptest::prelude::*;
use vidlrp_snippet::{preprocess, resize_bilinear, ChannelOrder, Preprocess, RgbFrame};

/// Resize every channel plane whole, crop, reorder, subtract the mean, divide: the steps
/// as `vidlrp_snippet::preprocess` documents them.
fn whole_then_crop(frames: &[RgbFrame], p: &Preprocess) -> Vec<f32> {
    let [rh, rw] = p.resize;
    let ([top, left], [ch, cw]) = p.crop;
    let t_n = frames.len();
    let mut out = vec![0.0f32; 3 * t_n * ch * cw];
    for (t, f) in frames.iter().enumerate() {
        for c in 0..3 {
            let src = p.channel_order.rgb_channel(c);
            let plane: Vec<f32> = (0..f.height * f.width)
                .map(|i| f32::from(f.data[3 * i + src]))
                .collect();
            let resized = if (f.height, f.width) == (rh, rw) {
                plane
            } else {
                resize_bilinear(&plane, f.height, f.width, rh, rw)
            };
            for y in 0..ch {
                for x in 0..cw {
                    let v = resized[(top + y) * rw + left + x];
                    out[((c * t_n + t) * ch + y) * cw + x] = (v - p.mean[c]) / p.std[c];
                }
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn only_the_crop_is_resized_and_its_bits_are_the_whole_resize(
        (h, w) in (1usize..40, 1usize..40),
        (rh, rw) in (1usize..50, 1usize..50),
        crop in (0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0, 0.0f64..1.0),
        frames in 1usize..4,
        bgr in any::<bool>(),
        same_size in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Sometimes the frames already have the resized size (no resize at all).
        let (rh, rw) = if same_size { (h, w) } else { (rh, rw) };
        let ch = 1 + (crop.0 * rh as f64) as usize % rh;
        let cw = 1 + (crop.1 * rw as f64) as usize % rw;
        let top = (crop.2 * (rh - ch + 1) as f64) as usize % (rh - ch + 1);
        let left = (crop.3 * (rw - cw + 1) as f64) as usize % (rw - cw + 1);
        let mut p = Preprocess::caffe();
        p.channel_order = if bgr { ChannelOrder::Bgr } else { ChannelOrder::Rgb };
        p.std = [1.0, 2.5, 0.3];
        p.resize = [rh, rw];
        p.crop = ([top, left], [ch, cw]);
        let bytes = vidlrp_rng::uniform_values(frames * h * w * 3, seed, 0.0, 255.99);
        let frames: Vec<RgbFrame> = bytes
            .chunks(h * w * 3)
            .map(|b| RgbFrame { width: w, height: h, data: b.iter().map(|&v| v as u8).collect() })
            .collect();
        let got = preprocess(&frames, &p).unwrap();
        prop_assert_eq!(got.shape(), &[3, frames.len(), ch, cw][..]);
        let want = whole_then_crop(&frames, &p);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(got.data()), bits(&want));
    }
}

#[test]
fn a_crop_outside_the_resized_frame_is_an_error() {
    let mut p = Preprocess::caffe();
    p.resize = [10, 10];
    p.crop = ([5, 0], [8, 8]);
    let f = RgbFrame {
        width: 12,
        height: 12,
        data: vec![7; 12 * 12 * 3],
    };
    let e = preprocess(&[f], &p).unwrap_err();
    assert!(e.contains("leaves the resized frame"), "{e}");
}
