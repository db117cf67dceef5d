//! Frame sources: where camera frames come from (V4L2 with the video front-end issue; files
//! under `--simulate`). Frames become model inputs only through face landmarks
//! ([`crate::landmarks`]); the face detector and landmarker arrive with the video front-end
//! issue, and until then a device reports video as absent rather than feed the model measures
//! that training never saw.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use serde::Deserialize;

use crate::FeatureError;

const W: u32 = 64;
const H: u32 = 48;

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
        assert_eq!(frames[1].as_ref().expect("png decodes").0, vec![100u8; (W * H) as usize]);
        assert!(frames[2].as_ref().unwrap_err().to_string().contains("002.jpg"));
    }
}
