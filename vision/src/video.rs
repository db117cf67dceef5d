//! Frame sources: where camera frames come from — V4L2 on the device (`device`'s `v4l`
//! feature) or files under `--simulate` and in tests: a folder of PNG/JPEG frames ([`FrameDir`]),
//! a YUV4MPEG2 file ([`Y4mFile`]) or a Motion-JPEG stream of concatenated JPEGs ([`MjpegFile`]).
//! Frames are handed on as 8-bit luma ([`to_gray`], bit-exact with OpenCV's `RGB2GRAY`), which
//! is all the face front-end ([`crate::face`]) uses; frames become model inputs only through
//! face landmarks (`features::landmarks`). Training never reads frames: the corpus has
//! landmarks.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use image::GrayImage;
use serde::Deserialize;

/// Why frames could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// A file or folder could not be read.
    #[error("video {path}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file is not what it claims to be, or its settings are out of range.
    #[error("video {path}: {detail}")]
    Format {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A frame ends before its size says.
    #[error("video {path}: truncated frame")]
    Truncated {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `video.toml` is not valid.
    #[error("{path} is not a valid video.toml")]
    Meta {
        /// The file.
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// One frame could not be decoded; the source goes on with the next.
    #[error("frame {frame}")]
    Frame {
        /// The frame (file, or stream and byte offset).
        frame: String,
        #[source]
        source: Box<image::ImageError>,
    },
    /// A camera failed to deliver a frame.
    #[error("camera {device}")]
    Camera {
        /// The camera.
        device: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn format_err(path: &Path, detail: impl Into<String>) -> VideoError {
    VideoError::Format { path: path.to_owned(), detail: detail.into() }
}

/// Where frames come from: a camera, or files under `--simulate`.
pub trait FrameSource {
    /// Nominal frame rate.
    fn fps(&self) -> f32;
    /// The next frame as luma; `None` at the end. A frame that cannot be decoded is an `Err` and
    /// the source moves on to the next one.
    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>>;
    /// When the frame last returned was captured, in ms after the first frame, by the source's
    /// own clock (a camera's buffer timestamps). `None`: frames are evenly spaced at `fps`, as in
    /// files. A live camera drops frames when the consumer falls behind; its timestamps keep the
    /// landmarks aligned with the audio and the transcript all the same.
    fn timestamp_ms(&self) -> Option<u32> {
        None
    }
}

/// At most `n` frames of another source (a live camera never ends by itself).
#[derive(Debug)]
pub struct Take<S> {
    inner: S,
    left: u32,
}

impl<S: FrameSource> Take<S> {
    /// The first `n` frames of `inner`.
    pub fn new(inner: S, n: u32) -> Take<S> {
        Take { inner, left: n }
    }
}

impl<S: FrameSource> FrameSource for Take<S> {
    fn fps(&self) -> f32 {
        self.inner.fps()
    }

    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>> {
        self.left = self.left.checked_sub(1)?;
        self.inner.next_frame()
    }

    fn timestamp_ms(&self) -> Option<u32> {
        self.inner.timestamp_ms()
    }
}

/// 8-bit luma as OpenCV 4's `cvtColor(RGB2GRAY)` computes it: 0.299/0.587/0.114 in 15-bit fixed
/// point (bit-exact, checked against OpenCV by the `vision` tests).
pub fn rgb_to_gray(img: &image::RgbImage) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0;
        let v = (u32::from(r) * 9798 + u32::from(g) * 19235 + u32::from(b) * 3735 + (1 << 14)) >> 15;
        image::Luma([v as u8])
    })
}

/// Luma of any decoded image (gray images are taken as they are).
pub fn to_gray(img: image::DynamicImage) -> GrayImage {
    match img {
        image::DynamicImage::ImageLuma8(g) => g,
        other => rgb_to_gray(&other.to_rgb8()),
    }
}

/// A camera's JPEG made decodable. UVC cameras often send MJPEG frames without Huffman tables
/// (no DHT segment): the tables are implied, the standard ones of ITU T.81 Annex K.3, as in MJPEG
/// AVI files. Such a frame gets an `AVI1` APP0 segment after its start marker, the mark by which
/// the decoder (zune-jpeg, through `image`) fills in the standard tables. Frames with their own
/// tables, and anything that does not parse, are passed through unchanged (the decoder reports
/// what is wrong). Hand-written: a scan of the marker segments up to the scan.
pub fn decodable_jpeg(jpeg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Cow::Borrowed(jpeg);
    }
    let mut at = 2;
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, the code.
        if jpeg.get(at) != Some(&0xFF) {
            return Cow::Borrowed(jpeg);
        }
        while jpeg.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&code) = jpeg.get(at) else { return Cow::Borrowed(jpeg) };
        at += 1;
        match code {
            0xC4 => return Cow::Borrowed(jpeg), // DHT: has its own tables
            0xDA => break,                      // start of scan, no tables before it
            0x01 | 0xD0..=0xD7 => {}            // markers without a length
            _ => {
                let Some(len) = jpeg.get(at..at + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
                    return Cow::Borrowed(jpeg);
                };
                if len < 2 {
                    return Cow::Borrowed(jpeg);
                }
                at += len;
            }
        }
    }
    const AVI1: [u8; 18] = [0xFF, 0xE0, 0x00, 0x10, b'A', b'V', b'I', b'1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut out = Vec::with_capacity(jpeg.len() + AVI1.len());
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&AVI1);
    out.extend_from_slice(&jpeg[2..]);
    Cow::Owned(out)
}

/// Decodes one camera or file JPEG frame to luma ([`decodable_jpeg`] first).
pub fn decode_jpeg(jpeg: &[u8]) -> Result<GrayImage, image::ImageError> {
    image::load_from_memory_with_format(&decodable_jpeg(jpeg), image::ImageFormat::Jpeg).map(to_gray)
}

#[derive(Deserialize)]
struct VideoMeta {
    fps: f32,
}

/// A folder of PNG/JPEG frames, in file-name order, with `video.toml` (`fps = N`) beside it or
/// inside it.
#[derive(Debug)]
pub struct FrameDir {
    files: std::vec::IntoIter<PathBuf>,
    fps: f32,
}

impl FrameDir {
    /// Opens the folder `dir`; a missing or bad `video.toml`, or no frames, is an error here.
    pub fn open(dir: &Path) -> Result<FrameDir, VideoError> {
        let meta_path = [dir.join("video.toml"), dir.with_file_name("video.toml")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| format_err(dir, "no video.toml (fps = N) in or beside the folder"))?;
        let text =
            std::fs::read_to_string(&meta_path).map_err(|source| VideoError::Io { path: meta_path.clone(), source })?;
        let meta: VideoMeta =
            toml::from_str(&text).map_err(|source| VideoError::Meta { path: meta_path.clone(), source })?;
        if !(meta.fps > 0.0 && meta.fps <= 240.0) {
            return Err(format_err(&meta_path, format!("fps {} out of range", meta.fps)));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|source| VideoError::Io { path: dir.to_owned(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                    Some("jpg" | "jpeg" | "png")
                )
            })
            .collect();
        if files.is_empty() {
            return Err(format_err(dir, "no .jpg/.png frames"));
        }
        files.sort();
        Ok(FrameDir { files: files.into_iter(), fps: meta.fps })
    }
}

impl FrameSource for FrameDir {
    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>> {
        let path = self.files.next()?;
        Some(
            image::open(&path)
                .map(to_gray)
                .map_err(|e| VideoError::Frame { frame: path.display().to_string(), source: Box::new(e) }),
        )
    }
}

/// A YUV4MPEG2 (`.y4m`) file: the luma plane of each frame is the frame. 8-bit colour spaces
/// (C420*, C422, C444, mono) are read; anything else is a clear error at open.
#[derive(Debug)]
pub struct Y4mFile {
    r: std::io::BufReader<std::fs::File>,
    origin: PathBuf,
    width: u32,
    height: u32,
    /// Bytes of chroma after each luma plane.
    chroma: usize,
    fps: f32,
    done: bool,
}

impl Y4mFile {
    /// Opens `path` and reads its header; an unsupported file is an error here.
    pub fn open(path: &Path) -> Result<Y4mFile, VideoError> {
        let origin = path.to_owned();
        let io = |source| VideoError::Io { path: path.to_owned(), source };
        let err = |detail: String| format_err(path, detail);
        let mut r = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
        let header = read_line(&mut r, 1024).map_err(io)?;
        let mut fields = header.split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            return Err(err("not a YUV4MPEG2 file".into()));
        }
        let (mut w, mut h, mut fps, mut colour) = (0u32, 0u32, 0f32, "420jpeg".to_owned());
        for f in fields {
            let (tag, v) = f.split_at(f.len().min(1));
            match tag {
                "W" => w = v.parse().map_err(|_| err(format!("bad width {v:?}")))?,
                "H" => h = v.parse().map_err(|_| err(format!("bad height {v:?}")))?,
                "F" => {
                    let (n, d) = v.split_once(':').ok_or_else(|| err(format!("bad frame rate {v:?}")))?;
                    let (n, d): (f32, f32) = (
                        n.parse().map_err(|_| err("bad frame rate".into()))?,
                        d.parse().map_err(|_| err("bad frame rate".into()))?,
                    );
                    fps = if d > 0.0 { n / d } else { 0.0 };
                }
                "C" => colour = v.to_owned(),
                _ => {}
            }
        }
        if !((1..=8192).contains(&w) && (1..=8192).contains(&h) && fps > 0.0 && fps <= 240.0) {
            return Err(err(format!("unsupported geometry {w}x{h} at {fps} fps")));
        }
        let luma = (w * h) as usize;
        let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
        let chroma = match colour.as_str() {
            "420" | "420jpeg" | "420paldv" | "420mpeg2" => 2 * cw * ch,
            "422" => 2 * cw * h as usize,
            "444" => 2 * luma,
            "mono" => 0,
            other => return Err(err(format!("colour space C{other} is not supported (8-bit 420, 422, 444, mono)"))),
        };
        Ok(Y4mFile { r, origin, width: w, height: h, chroma, fps, done: false })
    }
}

fn read_line<R: std::io::BufRead>(r: &mut R, limit: usize) -> std::io::Result<String> {
    let mut line = Vec::new();
    r.take(limit as u64).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "unterminated header line"));
    }
    line.pop();
    String::from_utf8(line).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "header is not UTF-8"))
}

impl FrameSource for Y4mFile {
    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>> {
        if self.done {
            return None;
        }
        let origin = self.origin.clone();
        let err = |detail: String| format_err(&origin, detail);
        let io = |source| VideoError::Io { path: origin.clone(), source };
        let line = match read_line(&mut self.r, 1024) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.done = true;
                return None;
            }
            other => other,
        };
        let result = line.map_err(io).and_then(|l| {
            if !l.starts_with("FRAME") {
                return Err(err(format!("expected FRAME, found {:?}", l.chars().take(16).collect::<String>())));
            }
            let mut luma = vec![0u8; (self.width * self.height) as usize];
            self.r.read_exact(&mut luma).map_err(|source| VideoError::Truncated { path: origin.clone(), source })?;
            std::io::copy(&mut (&mut self.r).take(self.chroma as u64), &mut std::io::sink())
                .map_err(|source| VideoError::Io { path: origin.clone(), source })?;
            GrayImage::from_raw(self.width, self.height, luma).ok_or_else(|| err("frame size".into()))
        });
        if result.is_err() {
            // A broken stream cannot be resynchronised: stop after reporting it.
            self.done = true;
        }
        Some(result)
    }
}

/// A Motion-JPEG file: JPEG images one after another (what many USB cameras send), split at
/// their start/end markers and decoded one by one. A corrupt JPEG is reported and skipped.
#[derive(Debug)]
pub struct MjpegFile {
    data: Vec<u8>,
    at: usize,
    fps: f32,
    origin: String,
}

impl MjpegFile {
    /// Reads `path`, played at `fps`; a file that does not start as a JPEG is an error here.
    pub fn open(path: &Path, fps: f32) -> Result<MjpegFile, VideoError> {
        let origin = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| VideoError::Io { path: path.to_owned(), source })?;
        if !data.starts_with(&[0xFF, 0xD8]) {
            return Err(format_err(path, "not a Motion-JPEG stream (no JPEG start marker)"));
        }
        Ok(MjpegFile { data, at: 0, fps, origin })
    }
}

impl FrameSource for MjpegFile {
    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self) -> Option<Result<GrayImage, VideoError>> {
        let rest = &self.data[self.at..];
        let start = rest.windows(2).position(|w| w == [0xFF, 0xD8])?;
        // The frame ends where the next one starts (or at the end of the file).
        let next = rest[start + 2..].windows(3).position(|w| w == [0xFF, 0xD9, 0xFF]).map(|p| start + 2 + p + 2);
        let end = next.unwrap_or(rest.len());
        let jpeg = &rest[start..end];
        self.at += end;
        Some(decode_jpeg(jpeg).map_err(|e| VideoError::Frame {
            frame: format!("{} (frame at byte {})", self.origin, self.at - end + start),
            source: Box::new(e),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_dir_reads_images_and_reports_problems() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(FrameDir::open(dir.path()).unwrap_err().to_string().contains("video.toml"));
        std::fs::write(dir.path().join("video.toml"), "fps = 10\n").expect("write");
        assert!(FrameDir::open(dir.path()).unwrap_err().to_string().contains("no .jpg"));
        for (i, v) in [0u8, 100].iter().enumerate() {
            image::GrayImage::from_pixel(320, 240, image::Luma([*v]))
                .save(dir.path().join(format!("{i:03}.png")))
                .expect("png");
        }
        std::fs::write(dir.path().join("002.jpg"), b"\xFF\xD8\xFF garbage").expect("write");
        let mut src = FrameDir::open(dir.path()).expect("opens");
        assert_eq!(src.fps(), 10.0);
        let frames: Vec<_> = std::iter::from_fn(|| src.next_frame()).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[1].as_ref().expect("png decodes").as_raw(), &vec![100u8; 320 * 240]);
        assert!(frames[2].as_ref().unwrap_err().to_string().contains("002.jpg"));
    }

    #[test]
    fn y4m_gives_luma_planes_and_reports_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.y4m");
        let mut bytes = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420jpeg\n".to_vec();
        for v in [10u8, 20] {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend(std::iter::repeat_n(v, 8));
            bytes.extend(std::iter::repeat_n(128, 4)); // 2x1 U and V
        }
        bytes.extend_from_slice(b"FRAME\n\x01\x02"); // cut short
        std::fs::write(&path, &bytes).expect("write");
        let mut y = Y4mFile::open(&path).expect("opens");
        assert_eq!(y.fps(), 25.0);
        assert_eq!(y.next_frame().expect("frame").expect("ok").as_raw(), &vec![10u8; 8]);
        assert_eq!(y.next_frame().expect("frame").expect("ok").as_raw(), &vec![20u8; 8]);
        assert!(y.next_frame().expect("frame").unwrap_err().to_string().contains("truncated"));
        assert!(y.next_frame().is_none());
        std::fs::write(&path, b"YUV4MPEG2 W4 H2 F25:1 C420p10\n").expect("write");
        assert!(Y4mFile::open(&path).unwrap_err().to_string().contains("C420p10"));
        std::fs::write(&path, b"YUV4MPEG2 W4 H2 F25:1 Cfoo\n").expect("write");
        assert!(Y4mFile::open(&path).unwrap_err().to_string().contains("Cfoo"));
        std::fs::write(&path, b"RIFF").expect("write");
        assert!(Y4mFile::open(&path).is_err());
    }

    /// The JPEG without its DHT segments, as many UVC cameras send their MJPEG frames.
    fn without_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut at = 2;
        while jpeg[at + 1] != 0xDA {
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            if jpeg[at + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[at..at + 2 + len]);
            }
            at += 2 + len;
        }
        out.extend_from_slice(&jpeg[at..]);
        out
    }

    #[test]
    fn camera_jpegs_without_huffman_tables_decode_with_the_standard_ones() {
        let img =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8]));
        let mut jpeg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).expect("encode");
        let bare = without_huffman_tables(&jpeg);
        assert!(bare.len() < jpeg.len() - 100, "the tables were removed");
        assert!(image::load_from_memory_with_format(&bare, image::ImageFormat::Jpeg).is_err(), "needs the fix");
        let whole = decode_jpeg(&jpeg).expect("decodes");
        assert_eq!(decode_jpeg(&bare).expect("decodes with the standard tables"), whole);
        // A frame with its own tables is not touched; damage is left to the decoder to report.
        assert!(matches!(decodable_jpeg(&jpeg), std::borrow::Cow::Borrowed(_)));
        for cut in [0, 1, 2, 3, 5, 20] {
            assert!(decode_jpeg(&bare[..cut]).is_err(), "cut at {cut}");
        }
        // Cut inside the scan: zune-jpeg pads what is missing; no panic either way.
        let _ = decode_jpeg(&bare[..bare.len() / 2]);
    }

    #[test]
    fn mjpeg_frames_decode_one_by_one_and_a_corrupt_one_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stream = Vec::new();
        for v in [30u8, 200] {
            let mut jpeg = Vec::new();
            image::GrayImage::from_pixel(16, 8, image::Luma([v]))
                .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
                .expect("encode");
            stream.extend_from_slice(&jpeg);
            if v == 30 {
                stream.extend_from_slice(b"\xFF\xD8\xFF\xE0garbage\xFF\xD9");
            }
        }
        let path = dir.path().join("v.mjpeg");
        std::fs::write(&path, &stream).expect("write");
        let mut m = MjpegFile::open(&path, 15.0).expect("opens");
        let frames: Vec<_> = std::iter::from_fn(|| m.next_frame()).collect();
        assert_eq!(frames.len(), 3, "{frames:?}");
        let mean = |g: &GrayImage| g.as_raw().iter().map(|&v| u32::from(v)).sum::<u32>() / 128;
        assert!(mean(frames[0].as_ref().expect("decodes")).abs_diff(30) <= 2);
        assert!(frames[1].is_err());
        assert!(mean(frames[2].as_ref().expect("decodes")).abs_diff(200) <= 2);
        std::fs::write(&path, b"nope").expect("write");
        assert!(MjpegFile::open(&path, 15.0).is_err());
    }
}
