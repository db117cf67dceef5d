//! The video front-end on real frames: the sample session (320×240 JPEGs of scikit-image's
//! `astronaut`, moving) through detection, tracking and dlib's 68-point model, then into the
//! face measures — the same measures, bit for bit, as from a DAIC-WOZ CLNF file holding the
//! same landmarks.

use std::path::Path;

use features::landmarks::{read_clnf, segment_features, write_clnf};
use features::segment::fixed_windows;
use features::video::FrameDir;
use vision::face::{FaceConfig, FaceFrontEnd, FaceStatus};

fn front_end() -> FaceFrontEnd {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{} is missing: run scripts/install_landmark_model.sh (CI does)", predictor.display());
    FaceFrontEnd::load(&vision::default_cascade(), &predictor, FaceConfig::default()).expect("models load")
}

fn sample_frames() -> FrameDir {
    FrameDir::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001/frames")).expect("frames")
}

#[test]
fn the_sample_face_is_tracked_with_plausible_landmarks() {
    let mut fe = front_end();
    let (track, stats) = fe.track(&mut sample_frames());
    println!("{stats:?}");
    assert_eq!(stats.frames as usize, track.frames.len());
    assert!(stats.with_face as f32 >= 0.9 * stats.frames as f32, "{stats:?}");
    // Tracking: the detector ran on a fraction of the frames.
    assert!(stats.detections < stats.frames / 3, "{stats:?}");
    assert_eq!(stats.decode_errors, 0);
    for f in track.frames.iter().filter(|f| f.valid) {
        let p = &f.pts;
        let mean_y = |r: std::ops::Range<usize>| r.clone().map(|i| p[i][1]).sum::<f32>() / r.len() as f32;
        let mean_x = |r: std::ops::Range<usize>| r.clone().map(|i| p[i][0]).sum::<f32>() / r.len() as f32;
        // Brows above eyes above nose tip above mouth above chin; left eye left of right eye.
        assert!(mean_y(17..27) < mean_y(36..48), "t={}", f.t_ms);
        assert!(mean_y(36..48) < p[30][1] && p[30][1] < mean_y(48..68) && mean_y(48..68) < p[8][1], "t={}", f.t_ms);
        assert!(mean_x(36..42) < mean_x(42..48), "t={}", f.t_ms);
    }
}

#[test]
fn camera_landmarks_and_a_clnf_file_of_them_give_identical_features() {
    let mut fe = front_end();
    let (mut track, _) = fe.track(&mut sample_frames());
    // DAIC-WOZ files hold 3 decimals: the in-memory landmarks are those same values.
    for f in &mut track.frames {
        for v in f.pts.iter_mut().flatten() {
            *v = format!("{v:.3}").parse().expect("number");
        }
    }
    let segments = fixed_windows(track.duration_ms());
    let live = segment_features(&track, &segments).expect("face present");
    let mut clnf = Vec::new();
    write_clnf(&track, &mut clnf).expect("writes");
    let back = read_clnf(&clnf[..], "camera.txt").expect("reads back");
    let from_file = segment_features(&back, &segments).expect("face present");
    assert_eq!(live, from_file);
}

#[test]
fn blank_and_faceless_frames_are_no_face_not_a_panic() {
    let mut fe = front_end();
    assert_eq!(fe.process(&image::GrayImage::new(320, 240)), FaceStatus::NoFace);
    assert_eq!(fe.process(&image::GrayImage::new(3, 2)), FaceStatus::NoFace);
    let noise = image::GrayImage::from_fn(320, 240, |x, y| image::Luma([((x * 7919 + y * 104_729) % 251) as u8]));
    assert_eq!(fe.process(&noise), FaceStatus::NoFace);
}

/// A camera that dropped frames: every third frame is missing, its timestamps say so.
struct DroppingCamera {
    inner: FrameDir,
    n: u32,
}

impl features::video::FrameSource for DroppingCamera {
    fn fps(&self) -> f32 {
        self.inner.fps()
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, features::FeatureError>> {
        self.n += 1;
        self.inner.next_frame()
    }

    fn timestamp_ms(&self) -> Option<u32> {
        // Frame k (from 0) was camera frame k + k/2: 0, 1, 3, 4, 6, 7, ...
        let k = self.n - 1;
        Some(((k + k / 2) as f32 * 1000.0 / self.fps()).round() as u32)
    }
}

#[test]
fn a_cameras_own_timestamps_place_the_landmarks_in_time() {
    let mut fe = front_end();
    let (even, _) = fe.track(&mut sample_frames());
    let (dropped, _) = fe.track(&mut DroppingCamera { inner: sample_frames(), n: 0 });
    assert_eq!(even.frames.len(), dropped.frames.len());
    // Frames 0, 1, 2, 3, 4 sit where the evenly spaced frames 0, 1, 3, 4, 6 do.
    let times: Vec<u32> = dropped.frames.iter().map(|f| f.t_ms).take(5).collect();
    let at = |i: usize| even.frames[i].t_ms;
    assert_eq!(times, vec![at(0), at(1), at(3), at(4), at(6)]);
    assert!(
        dropped.duration_ms() > even.duration_ms() * 14 / 10,
        "{} vs {}",
        dropped.duration_ms(),
        even.duration_ms()
    );
}
