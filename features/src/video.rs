//! Video front-end (foundation version): frames → head-motion and brightness statistics.
//!
//! Every frame is converted to 8-bit luma and reduced to 64×48 (area average). Motion energy is
//! the mean absolute difference between consecutive reduced frames (0–255 scale), normalised to
//! a per-second rate so that sources of different frame rates agree. Face detection, landmarks,
//! pose and gaze come with the video front-end issue; until then the whole frame is the "face".

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use serde::Deserialize;

use crate::{FeatureError, mean_sd};

/// Names of the video features, in order.
pub const FEATURE_NAMES: &[&str] = &["motion_mean", "motion_sd", "still_ratio", "brightness_mean", "brightness_sd"];

const W: u32 = 64;
const H: u32 = 48;
/// Motion below this (per second) counts as "still".
const STILL: f32 = 4.0;

/// A frame reduced to 64×48 luma.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallFrame(pub Vec<u8>);

/// Where frames come from: a camera, or files under `--simulate`.
pub trait FrameSource {
    fn fps(&self) -> f32;
    /// The next frame; `None` at the end. A frame that cannot be decoded is an `Err` and the
    /// source moves on to the next one.
    fn next_frame(&mut self) -> Option<Result<SmallFrame, FeatureError>>;
}

/// Reduces a decoded image to the front-end's working size.
pub fn reduce(img: &image::DynamicImage) -> SmallFrame {
    SmallFrame(img.resize_exact(W, H, FilterType::Triangle).to_luma8().into_raw())
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
    pub fn open(dir: &Path) -> Result<FrameDir, FeatureError> {
        let err = |detail: String| FeatureError::Video { path: dir.display().to_string(), detail };
        let meta_path = [dir.join("video.toml"), dir.with_file_name("video.toml")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| err("no video.toml (fps = N) in or beside the folder".into()))?;
        let meta: VideoMeta = std::fs::read_to_string(&meta_path)
            .map_err(|e| e.to_string())
            .and_then(|t| toml::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| err(format!("{}: {e}", meta_path.display())))?;
        if !(meta.fps > 0.0 && meta.fps <= 240.0) {
            return Err(err(format!("fps {} out of range", meta.fps)));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
                    Some("jpg" | "jpeg" | "png")
                )
            })
            .collect();
        if files.is_empty() {
            return Err(err("no .jpg/.png frames".into()));
        }
        files.sort();
        Ok(FrameDir { files: files.into_iter(), fps: meta.fps })
    }
}

impl FrameSource for FrameDir {
    fn fps(&self) -> f32 {
        self.fps
    }

    fn next_frame(&mut self) -> Option<Result<SmallFrame, FeatureError>> {
        let path = self.files.next()?;
        Some(
            image::open(&path)
                .map(|img| reduce(&img))
                .map_err(|e| FeatureError::Video { path: path.display().to_string(), detail: e.to_string() }),
        )
    }
}

/// Video features and how many frames fed them.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoSummary {
    pub features: Vec<f32>,
    pub frames_used: usize,
    pub frames_bad: usize,
}

/// Runs a source to its end. Bad frames are logged and skipped; `None` when fewer than two
/// frames could be read.
pub fn video_features(source: &mut dyn FrameSource) -> Option<VideoSummary> {
    let fps = source.fps();
    let (mut motion, mut brightness) = (Vec::new(), Vec::new());
    let mut prev: Option<SmallFrame> = None;
    let (mut used, mut bad) = (0usize, 0usize);
    while let Some(frame) = source.next_frame() {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("skipping frame: {e}");
                bad += 1;
                continue;
            }
        };
        used += 1;
        brightness.push(frame.0.iter().map(|&v| f32::from(v)).sum::<f32>() / frame.0.len() as f32);
        if let Some(p) = &prev {
            let diff =
                p.0.iter().zip(&frame.0).map(|(&a, &b)| f32::from(a.abs_diff(b))).sum::<f32>() / frame.0.len() as f32;
            motion.push(diff * fps);
        }
        prev = Some(frame);
    }
    if motion.is_empty() {
        return None;
    }
    let (m_mean, m_sd) = mean_sd(&motion);
    let still = motion.iter().filter(|&&m| m < STILL).count() as f32 / motion.len() as f32;
    let (b_mean, b_sd) = mean_sd(&brightness);
    Some(VideoSummary { features: vec![m_mean, m_sd, still, b_mean, b_sd], frames_used: used, frames_bad: bad })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Frames(Vec<Result<SmallFrame, FeatureError>>, f32);
    impl FrameSource for Frames {
        fn fps(&self) -> f32 {
            self.1
        }
        fn next_frame(&mut self) -> Option<Result<SmallFrame, FeatureError>> {
            if self.0.is_empty() { None } else { Some(self.0.remove(0)) }
        }
    }

    fn flat(v: u8) -> SmallFrame {
        SmallFrame(vec![v; (W * H) as usize])
    }

    #[test]
    fn motion_is_per_second_and_bad_frames_are_skipped() {
        let bad = || Err(FeatureError::Video { path: "x.jpg".into(), detail: "corrupt".into() });
        let mut src = Frames(vec![Ok(flat(10)), bad(), Ok(flat(20)), Ok(flat(20))], 5.0);
        let s = video_features(&mut src).expect("enough frames");
        assert_eq!((s.frames_used, s.frames_bad), (3, 1));
        // Diffs 10 and 0 grey levels per frame at 5 fps → 50 and 0 per second.
        assert_eq!(s.features[0], 25.0);
        assert_eq!(s.features[2], 0.5);
        assert!(video_features(&mut Frames(vec![Ok(flat(1))], 5.0)).is_none());
    }

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
        let s = video_features(&mut src).expect("two good frames");
        assert_eq!((s.frames_used, s.frames_bad), (2, 1));
        assert!((s.features[0] - 1000.0).abs() < 1.0, "{:?}", s.features);
    }
}
