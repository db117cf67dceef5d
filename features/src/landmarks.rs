//! Face measures from 68-point landmarks (iBUG numbering, as in DAIC-WOZ's CLNF files).
//!
//! The same code serves the corpus (landmarks read from `XXX_CLNF_features.txt`) and the device
//! (landmarks from the `vision` crate's camera landmarker), so a model trained on DAIC-WOZ sees
//! the same measures on the device. Only 2-D landmarks are used: CLNF's pose and gaze files come
//! from OpenFace's own models, which the device does not run.
//!
//! Per frame, points are expressed in a face frame: origin between the eye centres, x along the
//! eye line, unit = inter-ocular distance. **Head pose** is fitted to the 68 points: a
//! weak-perspective (scaled orthographic) PnP against [`mean_face_3d`] — least-squares affine
//! camera, then the nearest rotation — since neither DAIC-WOZ's CLNF files nor a kiosk camera
//! come with intrinsics. The **gaze proxy** is the head direction: 68-point landmarks carry no
//! iris, so "looking away" is the share of frames whose face normal is more than
//! [`GAZE_AWAY_DEG`] from the camera axis. Per segment, [`FEATURE_NAMES`] summarise the frames.

use std::io::BufRead;
use std::path::Path;

use crate::segment::Segment;
use crate::{FeatureError, Sequence, mean_sd, quantile};

pub const POINTS: usize = 68;

/// Names of the per-segment face features, in order.
pub const FEATURE_NAMES: &[&str] = &[
    "face_ratio",
    "motion_mean",
    "motion_sd",
    "mouth_width",
    "smile",
    "smile_ratio",
    "mouth_open",
    "eye_open",
    "blink_rate",
    "brow_raise",
    "head_pitch_deg",
    "head_pitch_sd_deg",
    "head_yaw_abs_deg",
    "head_yaw_sd_deg",
    "head_roll_sd_deg",
    "gaze_away_ratio",
];

/// A frame "looks away" when the face normal is this far (degrees) from the camera axis.
pub const GAZE_AWAY_DEG: f32 = 20.0;

/// Smile (mouth-corner lift, inter-ocular units) above which a frame counts as smiling.
pub const SMILE_THRESHOLD: f32 = 0.08;

/// One frame's landmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct LandmarkFrame {
    pub t_ms: u32,
    /// The tracker found a face with enough confidence.
    pub valid: bool,
    /// (x, y) in pixels, y down.
    pub pts: Box<[[f32; 2]; POINTS]>,
}

/// A session's landmark frames in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct LandmarkTrack {
    pub fps: f32,
    pub frames: Vec<LandmarkFrame>,
}

impl LandmarkTrack {
    pub fn duration_ms(&self) -> u32 {
        self.frames.last().map_or(0, |f| f.t_ms + (1000.0 / self.fps) as u32)
    }
}

/// A neutral frontal face in face-frame units (eye centres at (±0.5, 0), y down), hand-placed
/// in the iBUG 68-point layout. Used by the synthetic corpus and the tests.
pub fn mean_face() -> [[f32; 2]; POINTS] {
    let mut p = [[0.0f32; 2]; POINTS];
    for (i, pt) in p.iter_mut().enumerate().take(17) {
        let t = i as f32 / 16.0;
        *pt = [-(std::f32::consts::PI * t).cos(), 0.2 + 1.4 * (std::f32::consts::PI * t).sin()];
    }
    for i in 0..5 {
        let s = i as f32 / 4.0;
        let y = -0.35 - 0.1 * (std::f32::consts::PI * s).sin();
        p[17 + i] = [-0.95 + 0.75 * s, y];
        p[26 - i] = [0.95 - 0.75 * s, y];
    }
    for i in 0..4 {
        p[27 + i] = [0.0, -0.05 + 0.2 * i as f32];
    }
    for i in 0..5 {
        p[31 + i] = [-0.25 + 0.125 * i as f32, if i == 2 { 0.7 } else { 0.65 }];
    }
    let eye = [[-0.25, 0.0], [-0.1, -0.08], [0.1, -0.08], [0.25, 0.0], [0.1, 0.08], [-0.1, 0.08]];
    for (k, [x, y]) in eye.iter().enumerate() {
        p[36 + k] = [-0.5 + x, *y];
        // The right eye is the mirror image, numbered from its inner corner.
        let m = [3, 2, 1, 0, 5, 4][k];
        p[42 + m] = [0.5 - x, *y];
    }
    let outer = [
        [-0.4, 1.0],
        [-0.25, 0.92],
        [-0.1, 0.88],
        [0.0, 0.9],
        [0.1, 0.88],
        [0.25, 0.92],
        [0.4, 1.0],
        [0.25, 1.1],
        [0.1, 1.14],
        [0.0, 1.15],
        [-0.1, 1.14],
        [-0.25, 1.1],
    ];
    p[48..60].copy_from_slice(&outer);
    let inner =
        [[-0.3, 1.0], [-0.1, 0.97], [0.0, 0.97], [0.1, 0.97], [0.3, 1.0], [0.1, 1.03], [0.0, 1.03], [-0.1, 1.03]];
    p[60..68].copy_from_slice(&inner);
    p
}

/// Depth (toward the camera, inter-ocular units) of each point of [`mean_face`]: a hand-set
/// profile of an average head (jaw curving back to the ears, nose tip 0.45 forward), enough to
/// tell pitch and yaw apart; not a measured 3-D model.
pub fn mean_face_3d() -> [[f32; 3]; POINTS] {
    let flat = mean_face();
    let mut out = [[0.0f32; 3]; POINTS];
    for (i, (o, p)) in out.iter_mut().zip(flat.iter()).enumerate() {
        let z = match i {
            0..=16 => -0.75 + 0.6 * (std::f32::consts::PI * i as f32 / 16.0).sin(),
            17..=26 => 0.05,
            27..=30 => [0.1, 0.2, 0.32, 0.45][i - 27],
            31 | 35 => 0.2,
            32 | 34 => 0.27,
            33 => 0.3,
            36 | 39 | 42 | 45 => -0.02,
            36..=47 => 0.02,
            48 | 54 => 0.02,
            48..=59 => 0.12,
            _ => 0.1,
        };
        *o = [p[0], p[1], z];
    }
    out
}

/// Head pose from 2-D landmarks (radians): pitch > 0 = nose down, yaw > 0 = nose to the image's
/// right, roll > 0 = clockwise in the image; `facing` = cosine of the angle between the face
/// normal and the camera axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadPose {
    pub pitch: f32,
    pub yaw: f32,
    pub roll: f32,
    pub facing: f32,
}

/// Weak-perspective PnP: the 2×3 affine camera `M` minimising Σ|M·X − x|² over the centred
/// model points X and image points x, then its rows orthonormalised (Gram–Schmidt) into a
/// rotation. Hand-written: a 3×3 solve and a few cross products.
pub fn head_pose(p: &[[f32; 2]; POINTS]) -> Option<HeadPose> {
    let model = mean_face_3d();
    let n = POINTS as f64;
    let mc = (0..3).map(|k| model.iter().map(|m| f64::from(m[k])).sum::<f64>() / n).collect::<Vec<_>>();
    let pc = (0..2).map(|k| p.iter().map(|q| f64::from(q[k])).sum::<f64>() / n).collect::<Vec<_>>();
    let (mut a, mut b) = ([[0.0f64; 3]; 3], [[0.0f64; 3]; 2]);
    for (m, q) in model.iter().zip(p) {
        let x = [f64::from(m[0]) - mc[0], f64::from(m[1]) - mc[1], f64::from(m[2]) - mc[2]];
        let y = [f64::from(q[0]) - pc[0], f64::from(q[1]) - pc[1]];
        for r in 0..3 {
            for c in 0..3 {
                a[r][c] += x[r] * x[c];
            }
        }
        for r in 0..2 {
            for c in 0..3 {
                b[r][c] += y[r] * x[c];
            }
        }
    }
    let inv = invert3(&a)?;
    let row = |r: usize| -> [f64; 3] { [0, 1, 2].map(|c| (0..3).map(|k| b[r][k] * inv[k][c]).sum()) };
    let (m1, m2) = (row(0), row(1));
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (n1, n2) = (norm(m1), norm(m2));
    if !(n1 > 1e-9 && n2 > 1e-9 && (n1 / n2).is_finite()) {
        return None;
    }
    let r1 = m1.map(|v| v / n1);
    let d = m2[0] * r1[0] + m2[1] * r1[1] + m2[2] * r1[2];
    let r2u = [m2[0] - d * r1[0], m2[1] - d * r1[1], m2[2] - d * r1[2]];
    let r2n = norm(r2u);
    if r2n <= 1e-9 {
        return None;
    }
    let r2 = r2u.map(|v| v / r2n);
    let r3 = [r1[1] * r2[2] - r1[2] * r2[1], r1[2] * r2[0] - r1[0] * r2[2], r1[0] * r2[1] - r1[1] * r2[0]];
    // R = Rz(roll)·Ry(yaw)·Rx(pitch): its third row is (−sin yaw, −cos yaw·sin pitch, cos yaw·cos pitch).
    Some(HeadPose {
        pitch: (-r3[1]).atan2(r3[2]) as f32,
        yaw: (-r3[0]).clamp(-1.0, 1.0).asin() as f32,
        roll: r2[0].atan2(r1[0]) as f32,
        facing: r3[2].abs() as f32,
    })
}

fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |r: usize, k: usize| {
        let (r1, r2, k1, k2) = ((r + 1) % 3, (r + 2) % 3, (k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det = m[0][0] * c(0, 0) + m[0][1] * c(0, 1) + m[0][2] * c(0, 2);
    if det.abs() < 1e-12 {
        return None;
    }
    Some([0, 1, 2].map(|r| [0, 1, 2].map(|k| c(k, r) / det)))
}

/// Per-frame measures in the face frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measures {
    center: [f32; 2],
    iod: f32,
    roll: f32,
    mouth_width: f32,
    smile: f32,
    mouth_open: f32,
    eye_open: f32,
    brow_raise: f32,
    pose: HeadPose,
}

fn mean_of(p: &[[f32; 2]; POINTS], idx: std::ops::Range<usize>) -> [f32; 2] {
    let n = idx.len() as f32;
    let (sx, sy) = idx.fold((0.0, 0.0), |(sx, sy), i| (sx + p[i][0], sy + p[i][1]));
    [sx / n, sy / n]
}

fn measures(p: &[[f32; 2]; POINTS]) -> Option<Measures> {
    let (le, re) = (mean_of(p, 36..42), mean_of(p, 42..48));
    let (dx, dy) = (re[0] - le[0], re[1] - le[1]);
    let iod = (dx * dx + dy * dy).sqrt();
    if iod.is_nan() || iod <= 1e-3 || p.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let center = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
    let roll = dy.atan2(dx);
    let (c, s) = (roll.cos(), roll.sin());
    // Into the face frame: translate, rotate by -roll, scale by 1/iod.
    let q = |i: usize| {
        let (x, y) = (p[i][0] - center[0], p[i][1] - center[1]);
        [(c * x + s * y) / iod, (-s * x + c * y) / iod]
    };
    let dist = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let eye_h = (q(41)[1] - q(37)[1] + q(40)[1] - q(38)[1] + q(47)[1] - q(43)[1] + q(46)[1] - q(44)[1]) / 4.0;
    let eye_w = (dist(q(36), q(39)) + dist(q(42), q(45))) / 2.0;
    let brow = (17..27).map(|i| q(i)[1]).sum::<f32>() / 10.0;
    let pose = head_pose(p)?;
    Some(Measures {
        center,
        iod,
        roll,
        mouth_width: dist(q(48), q(54)),
        smile: (q(51)[1] + q(57)[1]) / 2.0 - (q(48)[1] + q(54)[1]) / 2.0,
        mouth_open: q(66)[1] - q(62)[1],
        eye_open: if eye_w > 0.0 { eye_h / eye_w } else { 0.0 },
        brow_raise: -brow,
        pose,
    })
}

/// Per-segment face features ([`FEATURE_NAMES`]), one row per segment; `None` when no frame of
/// the track has a usable face.
pub fn segment_features(track: &LandmarkTrack, segments: &[Segment]) -> Option<Sequence> {
    let m: Vec<Option<Measures>> = track.frames.iter().map(|f| if f.valid { measures(&f.pts) } else { None }).collect();
    let eye_all: Vec<f32> = m.iter().flatten().map(|m| m.eye_open).collect();
    if eye_all.is_empty() {
        return None;
    }
    let blink_level = 0.5 * quantile(&eye_all, 0.5);
    let mut seq = Sequence::new(FEATURE_NAMES.len());
    for seg in segments {
        let idx: Vec<usize> =
            (0..track.frames.len()).filter(|&i| (seg.start_ms..seg.end_ms).contains(&track.frames[i].t_ms)).collect();
        let good: Vec<(usize, Measures)> = idx.iter().filter_map(|&i| m[i].map(|v| (i, v))).collect();
        if good.is_empty() {
            let mut row = vec![0.0; FEATURE_NAMES.len()];
            row[0] = 0.0;
            seq.push(&row);
            continue;
        }
        // Head speed: centre displacement between consecutive good frames, IOD per second.
        let speed: Vec<f32> = good
            .windows(2)
            .filter_map(|w| {
                let ((i, a), (j, b)) = (w[0], w[1]);
                let dt = (track.frames[j].t_ms as f32 - track.frames[i].t_ms as f32) / 1000.0;
                (dt > 0.0).then(|| {
                    let d = ((b.center[0] - a.center[0]).powi(2) + (b.center[1] - a.center[1]).powi(2)).sqrt();
                    d / (0.5 * (a.iod + b.iod)) / dt
                })
            })
            .collect();
        let col = |f: fn(&Measures) -> f32| good.iter().map(|(_, v)| f(v)).collect::<Vec<f32>>();
        let (motion_mean, motion_sd) = mean_sd(&speed);
        let smile = col(|v| v.smile);
        let eye = col(|v| v.eye_open);
        let blinks = eye.windows(2).filter(|w| w[0] >= blink_level && w[1] < blink_level).count();
        let (pitch_mean, pitch_sd) = mean_sd(&col(|v| v.pose.pitch.to_degrees()));
        let yaw = col(|v| v.pose.yaw.to_degrees());
        let away_cos = GAZE_AWAY_DEG.to_radians().cos();
        let away = good.iter().filter(|(_, v)| v.pose.facing < away_cos).count() as f32 / good.len() as f32;
        seq.push(&[
            good.len() as f32 / idx.len().max(1) as f32,
            motion_mean,
            motion_sd,
            mean_sd(&col(|v| v.mouth_width)).0,
            mean_sd(&smile).0,
            smile.iter().filter(|&&s| s > SMILE_THRESHOLD).count() as f32 / smile.len() as f32,
            mean_sd(&col(|v| v.mouth_open)).0,
            mean_sd(&eye).0,
            blinks as f32 / seg.duration_s().max(1e-3),
            mean_sd(&col(|v| v.brow_raise)).0,
            pitch_mean,
            pitch_sd,
            mean_sd(&yaw.iter().map(|y| y.abs()).collect::<Vec<_>>()).0,
            mean_sd(&yaw).1,
            mean_sd(&col(|v| v.roll.to_degrees())).1,
            away,
        ]);
    }
    Some(seq)
}

/// Reads a DAIC-WOZ `XXX_CLNF_features.txt` file (comma-separated with a header: frame,
/// timestamp, confidence, success, x0..x67, y0..y67). Frames with `success` 0 or confidence
/// below 0.5 are kept as invalid. A malformed line is an error naming it.
pub fn read_clnf<R: BufRead>(r: R, origin: &str) -> Result<LandmarkTrack, FeatureError> {
    let err = |line: usize, detail: String| FeatureError::Landmarks { path: origin.to_owned(), line, detail };
    let mut lines = r.lines().enumerate();
    let header = match lines.next() {
        Some((_, Ok(h))) => h,
        Some((_, Err(e))) => return Err(err(1, e.to_string())),
        None => return Err(err(0, "empty file".into())),
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let find = |name: &str| cols.iter().position(|c| *c == name).ok_or_else(|| err(1, format!("no column {name:?}")));
    let (ts, conf, ok) = (find("timestamp")?, find("confidence")?, find("success")?);
    let xs: Vec<usize> = (0..POINTS).map(|i| find(&format!("x{i}"))).collect::<Result<_, _>>()?;
    let ys: Vec<usize> = (0..POINTS).map(|i| find(&format!("y{i}"))).collect::<Result<_, _>>()?;
    let mut frames = Vec::new();
    for (i, line) in lines {
        // as text: a landmark file's problem is reported in words with its line; a read error
        // there is one of them.
        let line = line.map_err(|e| err(i + 1, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let vals: Vec<&str> = line.split(',').map(str::trim).collect();
        if vals.len() != cols.len() {
            return Err(err(i + 1, format!("{} columns, header has {}", vals.len(), cols.len())));
        }
        let num = |c: usize| -> Result<f32, FeatureError> {
            vals[c].parse::<f32>().map_err(|_| err(i + 1, format!("bad number {:?} in column {}", vals[c], cols[c])))
        };
        let mut pts = Box::new([[0.0f32; 2]; POINTS]);
        for k in 0..POINTS {
            pts[k] = [num(xs[k])?, num(ys[k])?];
        }
        let t = num(ts)?;
        if !(0.0..4.0e6).contains(&t) {
            return Err(err(i + 1, format!("timestamp {t} out of range")));
        }
        frames.push(LandmarkFrame {
            t_ms: (t * 1000.0).round() as u32,
            valid: num(ok)? > 0.5 && num(conf)? >= 0.5,
            pts,
        });
    }
    if frames.is_empty() {
        return Err(err(0, "no frames".into()));
    }
    let mut dts: Vec<f32> = frames.windows(2).map(|w| w[1].t_ms.saturating_sub(w[0].t_ms) as f32).collect();
    dts.retain(|&d| d > 0.0);
    let fps = if dts.is_empty() { 30.0 } else { 1000.0 / quantile(&dts, 0.5) };
    Ok(LandmarkTrack { fps, frames })
}

/// [`read_clnf`] from a file.
pub fn read_clnf_file(path: &Path) -> Result<LandmarkTrack, FeatureError> {
    let origin = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| FeatureError::Io { path: origin.clone(), source })?;
    read_clnf(std::io::BufReader::new(f), &origin)
}

/// Writes a track in the CLNF format [`read_clnf`] reads (3 decimals, as DAIC-WOZ does).
pub fn write_clnf<W: std::io::Write>(track: &LandmarkTrack, mut w: W) -> std::io::Result<()> {
    let mut header = String::from("frame, timestamp, confidence, success");
    for axis in ["x", "y"] {
        for i in 0..POINTS {
            header.push_str(&format!(", {axis}{i}"));
        }
    }
    writeln!(w, "{header}")?;
    let mut line = String::with_capacity(2048);
    for (n, f) in track.frames.iter().enumerate() {
        use std::fmt::Write;
        line.clear();
        let _ = write!(
            line,
            "{}, {:.3}, {}, {}",
            n + 1,
            f.t_ms as f32 / 1000.0,
            if f.valid { "0.98" } else { "0" },
            u8::from(f.valid)
        );
        for axis in 0..2 {
            for p in f.pts.iter() {
                let _ = write!(line, ", {:.3}", p[axis]);
            }
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 3-D mean face rotated (pitch about x, then yaw about y, then roll in the image),
    /// scaled and projected orthographically.
    fn posed(pitch: f32, yaw: f32, roll: f32, scale: f32) -> [[f32; 2]; POINTS] {
        mean_face_3d().map(|[x, y, z]| {
            let (y1, z1) = (y * pitch.cos() + z * pitch.sin(), -y * pitch.sin() + z * pitch.cos());
            let x2 = x * yaw.cos() + z1 * yaw.sin();
            let (u, v) = (x2 * roll.cos() - y1 * roll.sin(), x2 * roll.sin() + y1 * roll.cos());
            [300.0 + scale * u, 200.0 + scale * v]
        })
    }

    #[test]
    fn head_pose_is_recovered_from_projected_landmarks() {
        for (p, y, r) in
            [(0.0f32, 0.0f32, 0.0f32), (15.0, 0.0, 0.0), (-10.0, 25.0, 0.0), (5.0, -20.0, 10.0), (0.0, 0.0, -15.0)]
        {
            let pose = head_pose(&posed(p.to_radians(), y.to_radians(), r.to_radians(), 80.0)).expect("fits");
            let got = [pose.pitch, pose.yaw, pose.roll].map(f32::to_degrees);
            for (g, want) in got.iter().zip([p, y, r]) {
                assert!((g - want).abs() < 1.0, "want {p} {y} {r}, got {got:?}");
            }
        }
        // Facing: frontal 1, turned away less.
        let front = head_pose(&posed(0.0, 0.0, 0.0, 60.0)).expect("fits");
        let turned = head_pose(&posed(0.0, 30f32.to_radians(), 0.0, 60.0)).expect("fits");
        assert!((front.facing - 1.0).abs() < 1e-4 && (turned.facing - 30f32.to_radians().cos()).abs() < 0.02);
        assert!(head_pose(&[[5.0, 5.0]; POINTS]).is_none());
    }

    /// The mean face at a pixel position and scale, as a camera would see it.
    fn placed(dx: f32, smile: f32) -> Box<[[f32; 2]; POINTS]> {
        let mut p = mean_face();
        p[48][1] -= smile;
        p[54][1] -= smile;
        Box::new(p.map(|[x, y]| [320.0 + dx + 60.0 * x, 200.0 + 60.0 * y]))
    }

    fn track(n: usize, dx_per_frame: f32, smile: f32) -> LandmarkTrack {
        let frames = (0..n)
            .map(|i| LandmarkFrame {
                t_ms: (i as f32 * 1000.0 / 30.0) as u32,
                valid: true,
                pts: placed(i as f32 * dx_per_frame, smile),
            })
            .collect();
        LandmarkTrack { fps: 30.0, frames }
    }

    fn col(name: &str) -> usize {
        FEATURE_NAMES.iter().position(|n| *n == name).expect("known")
    }

    #[test]
    fn mean_face_measures_are_as_designed() {
        let m = measures(&placed(0.0, 0.0)).expect("a face");
        assert!((m.iod - 60.0).abs() < 1e-3);
        assert!(m.roll.abs() < 1e-6 && m.pose.yaw.abs() < 1e-3);
        assert!((m.mouth_width - 0.8).abs() < 1e-4);
        assert!((m.smile - 0.025).abs() < 1e-4);
        assert!((m.brow_raise - 0.3983).abs() < 1e-3, "{}", m.brow_raise);
    }

    #[test]
    fn motion_and_smiles_are_measured() {
        let seg = [Segment { start_ms: 0, end_ms: 2000 }];
        let still = segment_features(&track(60, 0.0, 0.0), &seg).expect("faces");
        // 0.6 px per frame at 30 fps with a 60 px IOD: 0.3 IOD per second.
        let moving = segment_features(&track(60, 0.6, 0.12), &seg).expect("faces");
        assert!(still.row(0)[col("motion_mean")] < 1e-4);
        assert!((moving.row(0)[col("motion_mean")] - 0.3).abs() < 0.02, "{:?}", moving.row(0));
        assert_eq!(still.row(0)[col("smile_ratio")], 0.0);
        assert_eq!(moving.row(0)[col("smile_ratio")], 1.0);
        assert_eq!(moving.row(0)[col("face_ratio")], 1.0);
    }

    #[test]
    fn clnf_files_round_trip_and_the_same_landmarks_give_the_same_features() {
        let t = track(45, 0.3, 0.05);
        let mut buf = Vec::new();
        write_clnf(&t, &mut buf).expect("write");
        let back = read_clnf(&buf[..], "mem").expect("reads");
        assert_eq!(back.frames.len(), 45);
        assert!((back.fps - 30.0).abs() < 1.0, "{}", back.fps);
        let seg = [Segment { start_ms: 0, end_ms: 1500 }];
        let a = segment_features(&t, &seg).expect("faces");
        let b = segment_features(&back, &seg).expect("faces");
        for (x, y) in a.data.iter().zip(&b.data) {
            assert!((x - y).abs() < 1e-3, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn malformed_clnf_names_the_line() {
        let mut buf = Vec::new();
        write_clnf(&track(3, 0.0, 0.0), &mut buf).expect("write");
        let text = String::from_utf8(buf).expect("utf8");
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        lines[2] = lines[2].replacen(", ", ", x", 3);
        let bad = lines.join("\n");
        match read_clnf(bad.as_bytes(), "f.txt") {
            Err(FeatureError::Landmarks { line: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        lines[2] = "1, 2, 3".into();
        assert!(read_clnf(lines.join("\n").as_bytes(), "f.txt").unwrap_err().to_string().contains("line 3"));
        assert!(read_clnf(&b""[..], "f.txt").is_err());
    }

    #[test]
    fn invalid_frames_count_against_the_face_ratio() {
        let mut t = track(30, 0.0, 0.0);
        for f in t.frames.iter_mut().step_by(2) {
            f.valid = false;
        }
        let s = segment_features(&t, &[Segment { start_ms: 0, end_ms: 1000 }]).expect("some faces");
        assert!((s.row(0)[col("face_ratio")] - 0.5).abs() < 0.05);
        t.frames.iter_mut().for_each(|f| f.valid = false);
        assert!(segment_features(&t, &[Segment { start_ms: 0, end_ms: 1000 }]).is_none());
    }
}
