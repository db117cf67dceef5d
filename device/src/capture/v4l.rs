//! A V4L2 camera as a [`FrameSource`] (feature `v4l`): YUYV or Motion-JPEG at the size the
//! driver grants closest to the request; frames become luma (YUYV: the Y bytes; MJPEG: decoded
//! by the pure-Rust JPEG decoder of `image`, with the standard Huffman tables for frames that
//! leave them out). Any other pixel format is a clear error at open.

use std::path::Path;

use image::GrayImage;
use v4l::FourCC;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use vision::video::FrameSource;
use vision::video::VideoError;

/// The pixel formats this source converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Yuyv,
    Mjpeg,
}

impl PixelFormat {
    fn of(fourcc: FourCC) -> Option<PixelFormat> {
        match &fourcc.repr {
            b"YUYV" => Some(PixelFormat::Yuyv),
            b"MJPG" => Some(PixelFormat::Mjpeg),
            _ => None,
        }
    }
}

/// One captured buffer as luma. YUYV is `Y0 U Y1 V` per pixel pair: the luma is every other
/// byte. A buffer of the wrong size (a driver glitch) is an error, not a panic.
pub fn buffer_to_gray(format: PixelFormat, width: u32, height: u32, buf: &[u8]) -> Result<GrayImage, crate::BoxError> {
    match format {
        PixelFormat::Yuyv => {
            let need = (width as usize) * (height as usize) * 2;
            if buf.len() < need {
                return Err(
                    format!("YUYV buffer has {} bytes, a {width}x{height} frame needs {need}", buf.len()).into()
                );
            }
            let luma: Vec<u8> = buf[..need].iter().step_by(2).copied().collect();
            GrayImage::from_raw(width, height, luma).ok_or_else(|| "frame size".into())
        }
        // Frames without Huffman tables (common with UVC cameras) get the standard ones.
        PixelFormat::Mjpeg => Ok(vision::video::decode_jpeg(buf)?),
    }
}

/// A streaming V4L2 capture device.
pub struct V4lSource {
    stream: Stream<'static>,
    format: PixelFormat,
    width: u32,
    height: u32,
    fps: f32,
    origin: String,
    /// Buffer timestamp of the first frame, µs, and of the frame last returned, ms after it.
    first_us: Option<i64>,
    last_ms: Option<u32>,
}

impl std::fmt::Debug for V4lSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4lSource")
            .field("device", &self.origin)
            .field("format", &self.format)
            .field("size", &(self.width, self.height))
            .finish_non_exhaustive()
    }
}

impl V4lSource {
    /// Opens `path` (e.g. `/dev/video0`) asking for `width`×`height`, MJPEG first (less USB
    /// bandwidth), then YUYV.
    pub fn open(path: &Path, width: u32, height: u32) -> Result<V4lSource, VideoError> {
        let origin = path.display().to_string();
        let err = |detail: String| VideoError::Format { path: path.to_owned(), detail };
        let failed = |e: std::io::Error| VideoError::Camera { device: origin.clone(), source: e.into() };
        let dev = v4l::Device::with_path(path).map_err(failed)?;
        let mut granted = None;
        for fourcc in [b"MJPG", b"YUYV"] {
            let mut fmt = dev.format().map_err(failed)?;
            fmt.width = width;
            fmt.height = height;
            fmt.fourcc = FourCC::new(fourcc);
            if let Ok(f) = dev.set_format(&fmt)
                && let Some(p) = PixelFormat::of(f.fourcc)
            {
                granted = Some((p, f.width, f.height));
                break;
            }
        }
        let (format, w, h) = granted.ok_or_else(|| err("the camera offers neither MJPEG nor YUYV".into()))?;
        let fps = dev
            .params()
            .ok()
            .map(|p| p.interval)
            .filter(|i| i.numerator > 0)
            .map_or(30.0, |i| i.denominator as f32 / i.numerator as f32);
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(failed)?;
        // A camera that stops delivering is an error after this long, not a read that blocks
        // the session's video for ever (the capture then ends the video: `live::FROZEN_AFTER_MS`).
        stream.set_timeout(std::time::Duration::from_millis(u64::from(super::live::FROZEN_AFTER_MS)));
        tracing::info!(device = %origin, ?format, width = w, height = h, fps, "camera streaming");
        Ok(V4lSource { stream, format, width: w, height: h, fps, origin, first_us: None, last_ms: None })
    }
}

/// A V4L2 device as the session's [`Camera`](super::live::Camera), opened at each session.
#[derive(Debug, Clone)]
pub struct V4lCamera {
    pub path: std::path::PathBuf,
    pub width: u32,
    pub height: u32,
}

impl super::live::Camera for V4lCamera {
    fn open(&self) -> Result<Box<dyn FrameSource>, super::CaptureError> {
        let source = V4lSource::open(&self.path, self.width, self.height)
            .map_err(|e| super::CaptureError::Camera { device: self.describe(), source: e.into() })?;
        Ok(Box::new(source))
    }

    fn describe(&self) -> String {
        format!("V4L2 {} at {}x{}", self.path.display(), self.width, self.height)
    }
}

impl FrameSource for V4lSource {
    fn fps(&self) -> f32 {
        self.fps
    }

    fn timestamp_ms(&self) -> Option<u32> {
        self.last_ms
    }

    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>> {
        let origin = self.origin.clone();
        let (format, w, h) = (self.format, self.width, self.height);
        Some(match self.stream.next() {
            Ok((buf, meta)) => {
                // The driver's capture time: frames dropped while the consumer was busy leave a
                // gap in time rather than shifting every later frame.
                let us = meta.timestamp.sec * 1_000_000 + meta.timestamp.usec;
                let first = *self.first_us.get_or_insert(us);
                self.last_ms = u32::try_from((us - first).max(0) / 1000).ok();
                let used = (meta.bytesused as usize).min(buf.len());
                buffer_to_gray(format, w, h, &buf[..used])
                    .map_err(|source| VideoError::Camera { device: origin, source })
            }
            Err(e) => Err(VideoError::Camera { device: origin, source: e.into() }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_luma_is_every_other_byte_and_short_buffers_are_errors() {
        let buf = [10u8, 128, 20, 128, 30, 128, 40, 128];
        let g = buffer_to_gray(PixelFormat::Yuyv, 2, 2, &buf).expect("converts");
        assert_eq!(g.as_raw(), &vec![10, 20, 30, 40]);
        assert!(buffer_to_gray(PixelFormat::Yuyv, 4, 4, &buf).is_err());
    }

    #[test]
    fn mjpeg_buffers_decode_and_corrupt_ones_are_errors() {
        let mut jpeg = Vec::new();
        GrayImage::from_pixel(8, 8, image::Luma([90]))
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .expect("encode");
        let g = buffer_to_gray(PixelFormat::Mjpeg, 8, 8, &jpeg).expect("decodes");
        assert!(g.as_raw().iter().all(|&v| v.abs_diff(90) <= 2));
        assert!(buffer_to_gray(PixelFormat::Mjpeg, 8, 8, &jpeg[..jpeg.len() / 2]).is_err());
    }

    #[test]
    fn a_missing_camera_is_a_clear_error() {
        let e = V4lSource::open(Path::new("/dev/video-does-not-exist"), 640, 480).unwrap_err().to_string();
        assert!(e.contains("/dev/video-does-not-exist"), "{e}");
    }
}
