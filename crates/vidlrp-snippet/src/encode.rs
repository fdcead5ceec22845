//! Writing frames as H.264 video, byte for byte reproducibly.
//!
//! The same frames give the same `.mp4` bytes on every run and every x86-64 CPU (baseline,
//! AVX2, AVX-512) for a given FFmpeg/x264 build, whatever the heap held before and however many
//! cores the machine has:
//!
//! - RGB is converted to YUV 4:2:0 here ([`rgb_to_yuv420`], integer arithmetic), not by
//!   swscale;
//! - every byte of the buffer handed to the encoder is written by us, padding and the rows
//!   below the picture included (FFmpeg allocates planes for a height rounded up to 32 rows
//!   and leaves the extra rows uninitialised);
//! - x264 runs its portable C code with one thread: its SIMD code is chosen at run time by the
//!   CPU, and its AVX-512 functions read memory they did not write (the cause of two runs
//!   writing different bytes on AVX-512 CPUs), its SIMD levels do not give the same bytes, and
//!   its output depends on its thread count;
//! - the muxer runs in bit-exact mode (no library version strings in the container).

use crate::source::RgbFrame;

/// A frame in planar YUV 4:2:0: full-size luma, chroma subsampled 2x2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Yuv420 {
    /// Columns (even).
    pub width: usize,
    /// Rows (even).
    pub height: usize,
    /// `height * width` luma samples, row-major.
    pub y: Vec<u8>,
    /// `(height / 2) * (width / 2)` blue-difference samples.
    pub u: Vec<u8>,
    /// `(height / 2) * (width / 2)` red-difference samples.
    pub v: Vec<u8>,
}

/// ITU-R BT.601, limited ("TV") range, in 8-bit fixed point (coefficients scaled by 256):
/// `Y = 16 + (66 R + 129 G + 25 B + 128) >> 8`, and on the mean of each 2x2 block
/// `U = 128 + (-38 R - 74 G + 112 B + 128) >> 8`, `V = 128 + (112 R - 94 G - 18 B + 128) >> 8`
/// (`>>` rounds down). These are the colours FFmpeg's decoders and players assume for an
/// untagged standard-definition stream; the stream is also tagged so.
///
/// Sizes must be even (checked by the caller; odd sizes drop the last row or column of chroma).
///
/// ```
/// use vidlrp_snippet::{rgb_to_yuv420, RgbFrame};
/// let white = RgbFrame { width: 2, height: 2, data: vec![255; 12] };
/// let yuv = rgb_to_yuv420(&white);
/// assert_eq!((yuv.y, yuv.u, yuv.v), (vec![235; 4], vec![128], vec![128]));
/// let black = RgbFrame { width: 2, height: 2, data: vec![0; 12] };
/// assert_eq!(rgb_to_yuv420(&black).y, vec![16; 4]);
/// ```
pub fn rgb_to_yuv420(frame: &RgbFrame) -> Yuv420 {
    let (w, h) = (frame.width, frame.height);
    let px = |x: usize, y: usize| {
        let i = 3 * (y * w + x);
        let d = &frame.data;
        (i32::from(d[i]), i32::from(d[i + 1]), i32::from(d[i + 2]))
    };
    let mut y_plane = Vec::with_capacity(w * h);
    for row in 0..h {
        for col in 0..w {
            let (r, g, b) = px(col, row);
            y_plane.push(clamp_u8(16 + ((66 * r + 129 * g + 25 * b + 128) >> 8)));
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let (mut u_plane, mut v_plane) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
    for row in 0..ch {
        for col in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * col + dx, 2 * row + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            // Sums of four pixels: the >> 10 divides by 4 * 256, rounding as above.
            u_plane.push(clamp_u8(128 + ((-38 * r - 74 * g + 112 * b + 512) >> 10)));
            v_plane.push(clamp_u8(128 + ((112 * r - 94 * g - 18 * b + 512) >> 10)));
        }
    }
    Yuv420 {
        width: w,
        height: h,
        y: y_plane,
        u: u_plane,
        v: v_plane,
    }
}

fn clamp_u8(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

#[cfg(feature = "video")]
pub use self::video::write_video;

#[cfg(feature = "video")]
mod video {
    use std::path::Path;

    use video_rs::ffmpeg;

    use super::{rgb_to_yuv420, Yuv420};
    use crate::source::{invalid, RgbFrame};
    use crate::Result;

    use ffmpeg::format::Pixel;
    use ffmpeg::util::frame::video::Video as AvFrame;

    /// Writes frames as an H.264 (libx264, `ultrafast` preset, one thread) `.mp4` in BT.601
    /// limited-range YUV 4:2:0 at `fps` frames per second, with a keyframe every
    /// `keyframe_interval` frames. Sizes must be even. Written atomically: a temporary file
    /// beside `path`, renamed when complete, removed on error.
    ///
    /// The same frames give the same bytes on every run and CPU (see the [module
    /// docs](super)).
    pub fn write_video(
        path: &Path,
        frames: &[RgbFrame],
        fps: usize,
        keyframe_interval: u64,
    ) -> Result<()> {
        let Some(first) = frames.first() else {
            return Err(invalid(path, "no frames to write"));
        };
        let (w, h) = (first.width, first.height);
        if w == 0 || h == 0 || w % 2 == 1 || h % 2 == 1 {
            return Err(invalid(
                path,
                format!("video frames must have even, non-zero sizes (got {w}x{h})"),
            ));
        }
        if let Some(f) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
            return Err(invalid(
                path,
                format!(
                    "video frames must all be {w}x{h} (one is {}x{})",
                    f.width, f.height
                ),
            ));
        }
        if frames.iter().any(|f| f.data.len() != w * h * 3) {
            return Err(invalid(
                path,
                "a frame's data is not width x height x 3 bytes",
            ));
        }
        if fps == 0 || keyframe_interval == 0 {
            return Err(invalid(path, "fps and keyframe interval must be positive"));
        }
        video_rs::init().map_err(|e| invalid(path, format!("cannot initialise FFmpeg: {e}")))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}.mp4", std::process::id()));
        let result = encode(&tmp, frames, (w, h), fps, keyframe_interval)
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| e.to_string()));
        result.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            invalid(path, format!("cannot write video: {e}"))
        })
    }

    fn encode(
        path: &Path,
        frames: &[RgbFrame],
        (width, height): (usize, usize),
        fps: usize,
        keyframe_interval: u64,
    ) -> std::result::Result<(), ffmpeg::Error> {
        let fps_i32 = i32::try_from(fps).map_err(|_| ffmpeg::Error::InvalidData)?;
        let gop = u32::try_from(keyframe_interval).map_err(|_| ffmpeg::Error::InvalidData)?;
        let mut output = ffmpeg::format::output_as(path, "mp4")?;
        let global_header = output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let codec = ffmpeg::encoder::find_by_name("libx264")
            .or_else(|| ffmpeg::encoder::find(ffmpeg::codec::Id::H264))
            .ok_or(ffmpeg::Error::EncoderNotFound)?;
        let time_base = ffmpeg::Rational::new(1, fps_i32);
        let mut context = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()?;
        context.set_width(width as u32);
        context.set_height(height as u32);
        context.set_format(Pixel::YUV420P);
        context.set_time_base(time_base);
        context.set_frame_rate(Some(ffmpeg::Rational::new(fps_i32, 1)));
        context.set_gop(gop);
        context.set_colorspace(ffmpeg::color::Space::SMPTE170M);
        context.set_color_range(ffmpeg::color::Range::MPEG);
        let mut flags = ffmpeg::codec::Flags::BITEXACT;
        if global_header {
            flags |= ffmpeg::codec::Flags::GLOBAL_HEADER;
        }
        context.set_flags(flags);
        let mut options = ffmpeg::Dictionary::new();
        options.set("preset", "ultrafast");
        // x264's output depends on its thread count; one thread makes it the same everywhere.
        options.set("threads", "1");
        // x264's portable C code, never its run-time chosen SIMD: its AVX-512 functions read
        // memory they did not write (two encodes of the same frames in one process differed),
        // and its SIMD levels do not all give the same bytes (C, AVX2 and AVX-512 encodes of
        // one clip: 6401, 6372 and 6381 bytes). C costs ~2.6x the encoding time of small clips.
        options.set("x264-params", "asm=0");
        let mut encoder = context.open_with(options)?;
        let stream_index = {
            let mut stream = output.add_stream(codec)?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            stream.index()
        };
        let mut muxer_options = ffmpeg::Dictionary::new();
        muxer_options.set("fflags", "+bitexact");
        output.write_header_with(muxer_options)?;
        let stream_time_base = output
            .stream(stream_index)
            .map(|s| s.time_base())
            .ok_or(ffmpeg::Error::StreamNotFound)?;

        let drain = |encoder: &mut ffmpeg::encoder::Video,
                     output: &mut ffmpeg::format::context::Output|
         -> std::result::Result<(), ffmpeg::Error> {
            let mut packet = ffmpeg::Packet::empty();
            loop {
                match encoder.receive_packet(&mut packet) {
                    Ok(()) => {
                        // One frame per packet: without a duration the muxer drops the last.
                        packet.set_duration(1);
                        packet.set_stream(stream_index);
                        packet.set_position(-1);
                        packet.rescale_ts(time_base, stream_time_base);
                        packet.write_interleaved(output)?;
                    }
                    Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                        return Ok(())
                    }
                    Err(ffmpeg::Error::Eof) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        for (i, f) in frames.iter().enumerate() {
            let mut frame = yuv_frame(&rgb_to_yuv420(f));
            frame.set_pts(Some(i as i64));
            if (i as u64).is_multiple_of(keyframe_interval) {
                frame.set_kind(ffmpeg::picture::Type::I);
            }
            encoder.send_frame(&frame)?;
            drain(&mut encoder, &mut output)?;
        }
        encoder.send_eof()?;
        drain(&mut encoder, &mut output)?;
        output.write_trailer()
    }

    /// An FFmpeg frame holding `yuv`, every byte of its buffer written: the planes' row
    /// padding and the rows FFmpeg allocates below the picture are zero.
    fn yuv_frame(yuv: &Yuv420) -> AvFrame {
        let mut frame = AvFrame::new(Pixel::YUV420P, yuv.width as u32, yuv.height as u32);
        for i in 0..frame.planes() {
            zero_buffer(&mut frame, i);
        }
        for (plane, data, width) in [
            (0, &yuv.y, yuv.width),
            (1, &yuv.u, yuv.width / 2),
            (2, &yuv.v, yuv.width / 2),
        ] {
            let stride = frame.stride(plane);
            let dst = frame.data_mut(plane);
            for (row, src) in data.chunks_exact(width).enumerate() {
                dst[row * stride..row * stride + width].copy_from_slice(src);
            }
        }
        frame
    }

    /// Zeroes the whole reference-counted buffer `i` of a frame (`AVFrame.buf[i]`), which is
    /// larger than the picture its plane shows.
    fn zero_buffer(frame: &mut AvFrame, i: usize) {
        // SAFETY: `frame` owns its buffers (it was just allocated by `av_frame_get_buffer`
        // and is not shared); `buf[i]`, where non-null, points at an `AVBufferRef` whose
        // `data` is valid for `size` bytes.
        unsafe {
            let raw = frame.as_mut_ptr();
            let buf = (*raw).buf[i];
            if !buf.is_null() && !(*buf).data.is_null() {
                std::ptr::write_bytes((*buf).data, 0, (*buf).size);
            }
        }
    }

    /// Every byte of the buffers behind a frame's planes (for tests).
    #[cfg(test)]
    fn buffer_bytes(frame: &AvFrame) -> Vec<u8> {
        let mut out = Vec::new();
        // SAFETY: as in `zero_buffer`; read only.
        unsafe {
            let raw = frame.as_ptr();
            for &buf in &(*raw).buf {
                if !buf.is_null() && !(*buf).data.is_null() {
                    out.extend_from_slice(std::slice::from_raw_parts((*buf).data, (*buf).size));
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn frame(w: usize, h: usize, seed: u8) -> Yuv420 {
            let rgb = RgbFrame {
                width: w,
                height: h,
                data: (0..w * h * 3)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect(),
            };
            rgb_to_yuv420(&rgb)
        }

        /// Leaves freed heap memory of about `bytes` filled with `pattern`, so that a buffer
        /// allocated next can start with it (what made the old writer's frames differ).
        fn dirty_heap(bytes: usize, pattern: u8) {
            let blocks: Vec<Vec<u8>> = (0..8).map(|k| vec![pattern; bytes + 64 * k]).collect();
            std::hint::black_box(&blocks);
        }

        #[test]
        fn every_byte_handed_to_the_encoder_is_ours() {
            video_rs::init().unwrap();
            // 50 rows: FFmpeg allocates 64 (rounded up to 32) and strides with padding.
            for (w, h) in [(64, 48), (70, 50), (2, 2)] {
                let yuv = frame(w, h, 7);
                dirty_heap(4 * w * h, 0xA5);
                let a = buffer_bytes(&yuv_frame(&yuv));
                dirty_heap(4 * w * h, 0x5A);
                let b = buffer_bytes(&yuv_frame(&yuv));
                assert!(a.len() > w * h * 3 / 2, "buffer smaller than the picture");
                assert_eq!(
                    a, b,
                    "{w}x{h}: frame buffers differ with the heap's history"
                );
                let f = yuv_frame(&yuv);
                assert_eq!(&f.data(0)[..w], &yuv.y[..w]);
                let (s, last, cw) = (f.stride(2), h / 2 - 1, w / 2);
                assert_eq!(
                    &f.data(2)[last * s..last * s + cw],
                    &yuv.v[last * cw..(last + 1) * cw]
                );
            }
        }
    }
}
