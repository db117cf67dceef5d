//! # vision — camera frames to face landmarks, on the device
//!
//! ```text
//! frame (RGB/luma) ──► gray ──► cascade::Cascade (face boxes) ──► largest/most central face
//!                                                                      ▼
//!                        landmarks (68 points, iBUG order) ──► features::landmarks (measures)
//! ```
//!
//! * [`cascade`]: Viola–Jones detection with OpenCV's Haar/LBP cascade files, evaluated like
//!   OpenCV's `detectMultiScale` (checked against it on real photos).
//! * [`shape`]: dlib's shape-predictor files (the 68-point ERT model), read and evaluated like
//!   dlib (checked against dlib's own predictor).
//! * [`video`]: frame sources (V4L2 lives in `device`; here folders of frames, Y4M, Motion-JPEG)
//!   and JPEG decoding, including the Huffman tables UVC cameras leave out.
//! * [`face::FaceFrontEnd`]: detection every N frames, landmark tracking in between, the choice
//!   of face, and the video statistics a result's flags come from.
//!
//! Architecture invariant: `vision` never depends on a training library or on hardware; frames
//! come from [`video::FrameSource`]s.

pub mod cascade;
pub mod face;
pub mod hog;
pub mod shape;
pub mod video;

use std::path::{Path, PathBuf};

/// The face detector (OpenCV's `haarcascade_frontalface_default.xml`, Intel License Agreement,
/// BSD-style): `vision/` of the assets folder ([`features::assets`]) when installed there, else
/// the copy committed with this crate.
pub fn default_cascade() -> PathBuf {
    const NAME: &str = "haarcascade_frontalface_default.xml";
    let installed = features::assets::dir().join("vision").join(NAME);
    if installed.is_file() { installed } else { Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(NAME) }
}

/// The default face detector: dlib's HOG frontal face detector (`get_frontal_face_detector()`,
/// Boost Software License, `LICENSE-dlib.txt` beside it) in dlib's serialization, committed
/// with this crate.
pub fn default_detector() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join("dlib_frontal_face_detector.dat")
}

/// Where `scripts/install_landmark_model.sh` puts dlib's 68-point model: `landmarks/` of the
/// assets folder ([`features::assets`]).
pub fn default_predictor() -> PathBuf {
    features::assets::dir().join("landmarks/shape_predictor_68_face_landmarks.dat")
}

/// An axis-aligned box in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// Intersection over union.
    pub fn iou(&self, o: &Rect) -> f32 {
        let (x0, y0) = (self.x.max(o.x), self.y.max(o.y));
        let (x1, y1) = ((self.x + self.w).min(o.x + o.w), (self.y + self.h).min(o.y + o.h));
        let inter = if x1 > x0 && y1 > y0 { u64::from(x1 - x0) * u64::from(y1 - y0) } else { 0 };
        let union = self.area() + o.area() - inter;
        if union == 0 { 0.0 } else { inter as f32 / union as f32 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("model file {path}: {detail}")]
    Model { path: String, detail: String },
    #[error("model file {path}: {what}")]
    Malformed {
        /// The file (or where the model came from).
        path: String,
        /// What could not be done with it.
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("image {path}: {detail}")]
    Image { path: String, detail: String },
}

pub use video::{rgb_to_gray as to_gray, to_gray as luma};
