//! The video front-end: frames → face → 68 landmarks → a `features::landmarks::LandmarkTrack`.
//!
//! Detection runs on the first frame, every [`FaceConfig::detect_every`] frames
//! and whenever tracking is lost; in between, the face box is carried from the previous frame's
//! landmarks (their bounding box mapped back to the detector's box convention, learnt on the
//! last detection), which costs one landmark pass instead of a multi-scale scan.
//!
//! The detector is dlib's HOG face detector by default ([`crate::hog`]): frames whose faces may
//! be smaller than its 80-px window ([`FaceConfig::min_face`] of the shorter side) are
//! upsampled once as dlib does, frames whose smallest face is over twice the window are
//! scaled down for speed. OpenCV's cascades remain an option (an `.xml` detector file): there a
//! box counts as a face only with enough neighbours (candidate windows grouped into it,
//! [`FaceConfig::min_neighbours`], and at least [`FaceConfig::min_strength`] of the strongest
//! box's), since Haar cascades also fire on the background a few times, a real face dozens of
//! times. While a face is tracked, the detection that overlaps it is kept, so a
//! bystander leaning in does not take over the session; otherwise the largest (then the most
//! central) face is taken. Either way the other faces are counted and the frame is flagged.

use std::path::Path;

use crate::video::FrameSource;
use features::landmarks::{LandmarkFrame, LandmarkTrack, POINTS};
use image::GrayImage;

use crate::cascade::{Cascade, DetectParams};
use crate::hog::HogDetector;
use crate::shape::{LeafPrecision, ShapePredictor};
use crate::{Rect, VisionError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceConfig {
    /// The smallest face looked for, as a share of the frame's shorter side (HOG detector): a
    /// frame where that is under the detector's 80-px window is upsampled once (dlib's
    /// `pyramid_up`) if its shorter side is at most [`FaceConfig::upsample_max_side`]; one
    /// where it is over twice the window is searched scaled down. A 176×144 call-quality frame
    /// (faces of 57–66 px) is upsampled; group photos, 640×480 kiosk frames and 1080p frames
    /// are searched as they are.
    pub min_face: f32,
    /// Frames with a longer shorter side are never upsampled (cost: 4× the pixels).
    pub upsample_max_side: u32,
    /// Added to the HOG detector's thresholds (dlib's `adjust_threshold`; 0 = dlib's default).
    pub hog_adjust: f64,
    /// Cascade detectors only: the cascade's scan parameters.
    pub detect: DetectParams,
    /// Run the detector at least every this many frames (1 = every frame).
    pub detect_every: u32,
    /// Cascade detectors: detect on a copy scaled so its longer side is at most this (0 = full
    /// size); boxes are mapped back. Faces at a kiosk fill a good part of the frame.
    pub detect_max_side: u32,
    /// A box is a face only if at least this many candidate windows were grouped into it. On
    /// the sample interview's frames the real face gathers 30–48, background hits 4–9; faces of
    /// 30–40 px in the detection copy gather 11–14.
    pub min_neighbours: usize,
    /// ... and at least this share of the strongest box's neighbours.
    pub min_strength: f32,
    /// At a re-detection, the box overlapping the tracked face by at least this IoU continues it.
    pub continue_iou: f32,
    /// A shape further than this from the mean shape ([`shape_error`]) is not a face: a tracked
    /// one triggers a re-detection, a detected one counts as no face. Real frontal and turned
    /// faces of the carphone clip stay under 0.26; shapes collapsing while a tracked box drifts
    /// reach 0.3–0.4.
    pub max_shape_error: f32,
    /// A tracked shape whose size (RMS radius) or aspect (height / width of its points) leaves
    /// `[1 / k, k]` of the last detected shape's is lost: re-detect. At 30 fps a face does not
    /// change size by a quarter between detections; a drifting box's shape shrinks and flattens.
    pub max_track_change: f32,
    /// How [`FaceFrontEnd::load`] keeps the landmark model's leaves: compact by default (a
    /// device's memory budget), exact for comparisons with dlib.
    pub leaves: LeafPrecision,
}

impl Default for FaceConfig {
    fn default() -> Self {
        FaceConfig {
            min_face: 0.1,
            upsample_max_side: 400,
            hog_adjust: 0.0,
            // A kiosk face spans 150+ px of a 640-px frame; under ~60 px (30 px in the detection
            // copy) real faces gather as few neighbours as background hits do.
            detect: DetectParams { min_size: 64, ..DetectParams::default() },
            detect_every: 10,
            detect_max_side: 320,
            min_neighbours: 10,
            min_strength: 0.25,
            continue_iou: 0.3,
            max_shape_error: 0.3,
            max_track_change: 1.25,
            leaves: LeafPrecision::default(),
        }
    }
}

/// Faces whose boxes' areas are within this share of the largest count as the same size.
pub const SAME_SIZE: f32 = 0.8;

/// What one frame gave.
#[derive(Debug, Clone, PartialEq)]
pub enum FaceStatus {
    /// One face (or the chosen one of several, `others` > 0).
    Face {
        rect: Rect,
        landmarks: Box<[[f32; 2]; POINTS]>,
        others: usize,
        detected: bool,
    },
    NoFace,
}

/// The face detector: dlib's HOG detector (default) or an OpenCV cascade.
#[derive(Debug)]
pub enum FaceDetector {
    Hog(HogDetector),
    Cascade(Cascade),
}

impl FaceDetector {
    /// An `.xml` file is an OpenCV cascade, anything else a dlib HOG detector.
    pub fn load(path: &Path) -> Result<FaceDetector, VisionError> {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
            Cascade::load(path).map(FaceDetector::Cascade)
        } else {
            HogDetector::load(path).map(FaceDetector::Hog)
        }
    }
}

/// Face detector + shape predictor + the tracking state of one video stream.
#[derive(Debug)]
pub struct FaceFrontEnd {
    detector: FaceDetector,
    predictor: ShapePredictor,
    cfg: FaceConfig,
    since_detect: u32,
    /// The tracked face's box, and the detector box relative to the landmarks' bounding box
    /// (dx, dy, sw, sh in units of that box) from the last detection.
    track: Option<(Rect, [f32; 4])>,
    /// The last detected shape's RMS radius and aspect, which tracked shapes are held to.
    reference: (f32, f32),
    /// Tracked shapes found implausible since the last reset.
    rejected: u32,
}

/// How a session's video went.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VideoStats {
    pub frames: u32,
    pub with_face: u32,
    /// Detections that found more than one face (tracked frames do not look for others).
    pub several_faces: u32,
    pub detections: u32,
    /// Frames that could not be decoded (a corrupt JPEG, a short buffer) and were skipped.
    pub decode_errors: u32,
    /// Tracked shapes that failed the plausibility check (size, aspect, distance from the mean
    /// shape) and sent the frame back to the detector.
    pub tracking_lost: u32,
    /// The camera froze or failed before the session ended; the video is what came before.
    /// (Set by the capture that watches the camera; the front-end itself cannot tell.)
    pub camera_lost: bool,
}

impl VideoStats {
    /// Someone else was in view often enough to flag the result: in more than a tenth of the
    /// detections that found a face.
    pub fn several_faces_in_view(&self) -> bool {
        self.several_faces * 10 > self.detections.max(1)
    }

    /// Some frames were lost to damage: the measures come from the others.
    pub fn damaged(&self) -> bool {
        self.decode_errors > 0
    }
}

impl FaceFrontEnd {
    /// `detector`: a dlib HOG detector file ([`crate::default_detector`]) or an OpenCV cascade
    /// (`.xml`).
    pub fn load(detector: &Path, predictor: &Path, cfg: FaceConfig) -> Result<FaceFrontEnd, VisionError> {
        let detector = FaceDetector::load(detector)?;
        let predictor = ShapePredictor::load_with(predictor, cfg.leaves)?;
        FaceFrontEnd::new(detector, predictor, cfg)
    }

    pub fn new(
        detector: FaceDetector,
        predictor: ShapePredictor,
        cfg: FaceConfig,
    ) -> Result<FaceFrontEnd, VisionError> {
        if predictor.points() != POINTS {
            return Err(VisionError::Model {
                path: "shape predictor".into(),
                detail: format!("{} landmarks; the face measures need the 68-point iBUG layout", predictor.points()),
            });
        }
        Ok(FaceFrontEnd { detector, predictor, cfg, since_detect: 0, track: None, reference: (0.0, 0.0), rejected: 0 })
    }

    /// Forgets the tracked face (a new session, a new camera).
    pub fn reset(&mut self) {
        self.track = None;
        self.since_detect = 0;
        self.rejected = 0;
    }

    /// Faces in a frame, largest first, then most central (detector boxes in frame pixels,
    /// clipped to the frame; cascade boxes too weak to be faces left out).
    pub fn detect(&self, gray: &GrayImage) -> Vec<Rect> {
        let mut faces = match &self.detector {
            FaceDetector::Hog(hog) => self.detect_hog(hog, gray),
            FaceDetector::Cascade(cascade) => self.detect_cascade(cascade, gray),
        };
        let (w, h) = gray.dimensions();
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        let off_centre = |r: &Rect| (r.x as f32 + r.w as f32 / 2.0 - cx).hypot(r.y as f32 + r.h as f32 / 2.0 - cy);
        faces.sort_by(|a, b| b.area().cmp(&a.area()).then(off_centre(a).total_cmp(&off_centre(b))));
        // Boxes of one face size differ by a few pixels with their place on the detector's grid:
        // among the faces within [`SAME_SIZE`] of the largest, the most central comes first.
        if let Some(largest) = faces.first().map(Rect::area) {
            let central = faces
                .iter()
                .enumerate()
                .filter(|(_, f)| f.area() as f32 >= SAME_SIZE * largest as f32)
                .min_by(|a, b| off_centre(a.1).total_cmp(&off_centre(b.1)))
                .map_or(0, |(i, _)| i);
            faces[..=central].rotate_right(1);
        }
        faces
    }

    /// HOG: upsampled once when the smallest face looked for is under the 80-px window, scaled
    /// down when it is over twice the window.
    fn detect_hog(&self, hog: &HogDetector, gray: &GrayImage) -> Vec<Rect> {
        let (w, h) = gray.dimensions();
        let smallest = self.cfg.min_face.max(0.0) * w.min(h) as f32;
        let window = hog.window() as f32;
        let boxes: Vec<crate::hog::Boxi> = if smallest < window && w.min(h) <= self.cfg.upsample_max_side {
            hog.detect(gray, 1, self.cfg.hog_adjust).into_iter().map(|d| d.rect).collect()
        } else if smallest >= 2.0 * window {
            let k = smallest / window;
            let small = scaled_copy(gray, k);
            let scale = |v: i64| (v as f32 * k).round() as i64;
            hog.detect(&small, 0, self.cfg.hog_adjust)
                .into_iter()
                .map(|d| crate::hog::Boxi {
                    left: scale(d.rect.left),
                    top: scale(d.rect.top),
                    right: scale(d.rect.right),
                    bottom: scale(d.rect.bottom),
                })
                .collect()
        } else {
            hog.detect(gray, 0, self.cfg.hog_adjust).into_iter().map(|d| d.rect).collect()
        };
        boxes.iter().filter_map(|b| b.clip(w, h)).collect()
    }

    fn detect_cascade(&self, cascade: &Cascade, gray: &GrayImage) -> Vec<Rect> {
        let (w, h) = gray.dimensions();
        let side = w.max(h);
        let max = self.cfg.detect_max_side;
        let faces = if max > 0 && side > max {
            let k = side as f32 / max as f32;
            let small = scaled_copy(gray, k);
            let p = DetectParams { min_size: (self.cfg.detect.min_size as f32 / k) as u32, ..self.cfg.detect };
            cascade
                .detect_counted(&small, &p)
                .into_iter()
                .map(|(r, n)| {
                    let r = Rect {
                        x: (r.x as f32 * k) as u32,
                        y: (r.y as f32 * k) as u32,
                        w: (r.w as f32 * k) as u32,
                        h: (r.h as f32 * k) as u32,
                    };
                    (r, n)
                })
                .collect()
        } else {
            cascade.detect_counted(gray, &self.cfg.detect)
        };
        let strongest = faces.iter().map(|f| f.1).max().unwrap_or(0);
        let enough = self.cfg.min_neighbours.max((self.cfg.min_strength * strongest as f32).ceil() as usize);
        faces.into_iter().filter(|f| f.1 >= enough).map(|f| f.0).collect()
    }

    /// One frame: detect or track, then landmarks. A tracked shape that fails the plausibility
    /// check sends the frame to the detector; a detected shape that fails it is no face.
    pub fn process(&mut self, gray: &GrayImage) -> FaceStatus {
        let status = self.process_once(gray);
        if let FaceStatus::Face { detected: false, landmarks, .. } = &status
            && !self.plausible_track(landmarks)
        {
            self.rejected += 1;
            self.since_detect = u32::MAX;
            return self.process_once(gray);
        }
        status
    }

    fn plausible_track(&self, landmarks: &[[f32; 2]; POINTS]) -> bool {
        let (error, radius) = shape_error(self.predictor.mean_shape(), &landmarks[..]);
        let b = bounds(landmarks);
        let k = self.cfg.max_track_change.max(1.0);
        let within = |v: f32, reference: f32| reference > 0.0 && v / reference <= k && v / reference >= 1.0 / k;
        error <= self.cfg.max_shape_error && within(radius, self.reference.0) && within(b[3] / b[2], self.reference.1)
    }

    fn process_once(&mut self, gray: &GrayImage) -> FaceStatus {
        let redetect = self.track.is_none() || self.since_detect >= self.cfg.detect_every.max(1);
        let (rect, others, detected) = if redetect {
            self.since_detect = 0;
            let faces = self.detect(gray);
            // The tracked face goes on if a detection continues it; else the first (largest).
            let continued = self.track.and_then(|(t, _)| {
                faces
                    .iter()
                    .copied()
                    .map(|f| (f, f.iou(&t)))
                    .filter(|&(_, iou)| iou >= self.cfg.continue_iou)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(f, _)| f)
            });
            match continued.or_else(|| faces.first().copied()) {
                Some(r) => (r, faces.len() - 1, true),
                None => {
                    self.track = None;
                    return FaceStatus::NoFace;
                }
            }
        } else {
            let (r, _) = self.track.unwrap_or((Rect { x: 0, y: 0, w: 1, h: 1 }, [0.0; 4]));
            (r, 0, false)
        };
        self.since_detect += 1;
        let pts = self.predictor.predict(gray, &rect);
        let mut landmarks = Box::new([[0.0f32; 2]; POINTS]);
        for (d, p) in landmarks.iter_mut().zip(&pts) {
            *d = *p;
        }
        let bbox = bounds(&landmarks);
        let (w, h) = (gray.width() as f32, gray.height() as f32);
        // Lost: the landmarks left the frame or collapsed.
        if bbox[2] < 8.0
            || bbox[3] < 8.0
            || bbox[0] + bbox[2] < 0.0
            || bbox[1] + bbox[3] < 0.0
            || bbox[0] > w
            || bbox[1] > h
        {
            self.track = None;
            return FaceStatus::NoFace;
        }
        if detected {
            let (error, radius) = shape_error(self.predictor.mean_shape(), &landmarks[..]);
            if error > self.cfg.max_shape_error {
                self.track = None;
                return FaceStatus::NoFace;
            }
            self.reference = (radius, bbox[3] / bbox[2]);
        }
        let relation = if detected {
            [
                (rect.x as f32 - bbox[0]) / bbox[2],
                (rect.y as f32 - bbox[1]) / bbox[3],
                rect.w as f32 / bbox[2],
                rect.h as f32 / bbox[3],
            ]
        } else {
            self.track.map_or([0.0, 0.0, 1.0, 1.0], |t| t.1)
        };
        let next = Rect {
            x: (bbox[0] + relation[0] * bbox[2]).max(0.0) as u32,
            y: (bbox[1] + relation[1] * bbox[3]).max(0.0) as u32,
            w: (relation[2] * bbox[2]).max(1.0) as u32,
            h: (relation[3] * bbox[3]).max(1.0) as u32,
        };
        self.track = Some((next, relation));
        FaceStatus::Face { rect, landmarks, others, detected }
    }

    /// Runs a whole frame source into a landmark track (frame `i` at `i / fps`).
    pub fn track(&mut self, source: &mut dyn FrameSource) -> (LandmarkTrack, VideoStats) {
        self.reset();
        let fps = source.fps();
        let mut stats = VideoStats::default();
        let mut frames = Vec::new();
        let rejected_before = self.rejected;
        while let Some(frame) = source.next_frame() {
            let t_ms = source
                .timestamp_ms()
                .unwrap_or_else(|| (f64::from(stats.frames) * 1000.0 / f64::from(fps)).round() as u32);
            stats.frames += 1;
            let status = match frame {
                Ok(gray) => self.process(&gray),
                Err(e) => {
                    tracing::warn!("frame skipped: {e}");
                    stats.decode_errors += 1;
                    FaceStatus::NoFace
                }
            };
            match status {
                FaceStatus::Face { landmarks, others, detected, .. } => {
                    stats.with_face += 1;
                    stats.several_faces += u32::from(others > 0);
                    stats.detections += u32::from(detected);
                    frames.push(LandmarkFrame { t_ms, valid: true, pts: landmarks });
                }
                FaceStatus::NoFace => {
                    frames.push(LandmarkFrame { t_ms, valid: false, pts: Box::new([[0.0; 2]; POINTS]) })
                }
            }
        }
        stats.tracking_lost = self.rejected - rejected_before;
        (LandmarkTrack { fps, frames }, stats)
    }
}

/// How far a shape is from the mean shape once scale, rotation and position are taken out:
/// the RMS residual of the best similarity fit, over the shape's RMS radius (0 = the mean
/// shape itself), and that radius in pixels. `mean` holds (x, y) pairs as
/// [`ShapePredictor::mean_shape`] gives them.
pub fn shape_error(mean: &[f32], pts: &[[f32; 2]]) -> (f32, f32) {
    let n = pts.len().min(mean.len() / 2);
    if n == 0 {
        return (f32::INFINITY, 0.0);
    }
    let centre = |it: &mut dyn Iterator<Item = [f32; 2]>| {
        let (sx, sy) = it.fold((0.0f64, 0.0f64), |(x, y), p| (x + f64::from(p[0]), y + f64::from(p[1])));
        [sx / n as f64, sy / n as f64]
    };
    let m = |i: usize| [f64::from(mean[2 * i]), f64::from(mean[2 * i + 1])];
    let p = |i: usize| [f64::from(pts[i][0]), f64::from(pts[i][1])];
    let cm = centre(&mut (0..n).map(|i| [mean[2 * i], mean[2 * i + 1]]));
    let cp = centre(&mut pts[..n].iter().copied());
    let (mut mm, mut dot, mut cross, mut pp) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let (a, b) = (m(i), p(i));
        let (ax, ay, bx, by) = (a[0] - cm[0], a[1] - cm[1], b[0] - cp[0], b[1] - cp[1]);
        mm += ax * ax + ay * ay;
        dot += ax * bx + ay * by;
        cross += ax * by - ay * bx;
        pp += bx * bx + by * by;
    }
    if mm <= 0.0 || pp <= 0.0 {
        return (f32::INFINITY, 0.0);
    }
    // Least squares: residual² = Σ|p|² − (dot² + cross²) / Σ|m|².
    let residual = (pp - (dot * dot + cross * cross) / mm).max(0.0);
    ((residual / pp).sqrt() as f32, (pp / n as f64).sqrt() as f32)
}

/// Bounding box (x, y, w, h) of landmarks.
fn bounds(p: &[[f32; 2]; POINTS]) -> [f32; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for q in p {
        x0 = x0.min(q[0]);
        y0 = y0.min(q[1]);
        x1 = x1.max(q[0]);
        y1 = y1.max(q[1]);
    }
    [x0, y0, x1 - x0, y1 - y0]
}

/// `gray` shrunk by `k` (> 1) with the cascade's bilinear resize, each side at least 1 px.
fn scaled_copy(gray: &GrayImage, k: f32) -> GrayImage {
    let (w, h) = gray.dimensions();
    let (sw, sh) = (((w as f32 / k).round() as u32).max(1), ((h as f32 / k).round() as u32).max(1));
    let mut small = Vec::new();
    crate::cascade::resize_bilinear(gray, sw, sh, &mut small);
    GrayImage::from_raw(sw, sh, small).unwrap_or_else(|| GrayImage::new(1, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_error_ignores_pose_and_size_but_not_deformation() {
        let mean: Vec<f32> =
            (0..68).flat_map(|i| [(i as f32 * 0.7).sin() * 0.4 + 0.5, (i as f32 * 1.3).cos() * 0.4 + 0.5]).collect();
        let pts =
            |f: &dyn Fn(f32, f32) -> [f32; 2]| -> Vec<[f32; 2]> { mean.chunks(2).map(|p| f(p[0], p[1])).collect() };
        let (a, c) = (0.3f32.cos(), 0.3f32.sin());
        let moved = pts(&|x, y| [40.0 + 90.0 * (a * x - c * y), 25.0 + 90.0 * (c * x + a * y)]);
        let (e, r) = shape_error(&mean, &moved);
        assert!(e < 1e-5, "{e}");
        let (_, r0) = shape_error(&mean, &pts(&|x, y| [x, y]));
        assert!((r / r0 - 90.0).abs() < 1e-3);
        let squashed = pts(&|x, y| [90.0 * x, 30.0 * y]);
        assert!(shape_error(&mean, &squashed).0 > 0.3);
        assert_eq!(shape_error(&mean, &[]).0, f32::INFINITY);
        assert_eq!(shape_error(&mean, &vec![[5.0, 5.0]; 68]).0, f32::INFINITY);
    }
}
