//! The video front-end on real frames: the sample session (320×240 JPEGs of scikit-image's
//! `astronaut`, moving) through detection, tracking and dlib's 68-point model, then into the
//! face measures — the same measures, bit for bit, as from a DAIC-WOZ CLNF file holding the
//! same landmarks.

use std::path::Path;

use features::landmarks::{read_clnf, segment_features, write_clnf};
use features::segment::fixed_windows;
use vision::face::{FaceConfig, FaceFrontEnd, FaceStatus};
use vision::video::{FrameDir, FrameSource};

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

impl FrameSource for DroppingCamera {
    fn fps(&self) -> f32 {
        self.inner.fps()
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, vision::video::VideoError>> {
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

/// Pastes the astronaut's face (a 240×240 crop around it; the face box is about 95 px) into
/// `frame` at (x0, y0), scaled by `k`.
fn paste_face(frame: &mut image::GrayImage, x0: u32, y0: u32, k: f32) {
    let astronaut = vision::luma(
        image::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces/astronaut.png")).expect("fixture"),
    );
    let crop = image::imageops::crop_imm(&astronaut, 100, 0, 240, 240).to_image();
    let side = (240.0 * k) as u32;
    let mut scaled = Vec::new();
    vision::cascade::resize_bilinear(&crop, side, side, &mut scaled);
    for (i, &v) in scaled.iter().enumerate() {
        let (x, y) = (x0 + i as u32 % side, y0 + i as u32 / side);
        if x < frame.width() && y < frame.height() {
            frame.put_pixel(x, y, image::Luma([v]));
        }
    }
}

#[test]
fn with_several_faces_the_largest_is_measured_and_the_others_counted() {
    let mut fe = front_end();
    // A smaller face near the centre, a larger one at the right edge.
    let mut frame = image::GrayImage::from_pixel(640, 480, image::Luma([128]));
    paste_face(&mut frame, 100, 100, 1.0);
    paste_face(&mut frame, 304, 80, 1.4);
    let faces = fe.detect(&frame);
    assert_eq!(faces.len(), 2, "{faces:?}");
    assert!(faces[0].area() > faces[1].area(), "largest first: {faces:?}");
    assert!(faces[0].x > faces[1].x, "the large one is the one at the edge: {faces:?}");
    match fe.process(&frame) {
        FaceStatus::Face { rect, others, detected, landmarks } => {
            assert_eq!((rect, others, detected), (faces[0], 1, true));
            let nose = landmarks[30];
            assert!(nose[0] > rect.x as f32 && nose[0] < (rect.x + rect.w) as f32, "{nose:?} in {rect:?}");
        }
        FaceStatus::NoFace => panic!("no face"),
    }
    // Tracking frames do not look for other faces; detection frames do, and are counted.
    let mut frames = vision::video::Take::new(Repeat(frame, 25.0), 25);
    let (_, stats) = fe.track(&mut frames);
    assert_eq!(stats.with_face, 25);
    assert_eq!(stats.detections, 3, "{stats:?}");
    assert_eq!(stats.several_faces, stats.detections, "{stats:?}");
    assert!(stats.several_faces_in_view());
}

#[test]
fn equal_faces_are_taken_nearest_the_centre_first() {
    let fe = front_end();
    let mut frame = image::GrayImage::from_pixel(640, 480, image::Luma([128]));
    paste_face(&mut frame, 0, 100, 1.0);
    paste_face(&mut frame, 200, 100, 1.0);
    let faces = fe.detect(&frame);
    assert_eq!(faces.len(), 2, "{faces:?}");
    // Boxes of one face size differ by a few pixels with their place on the detector's grid:
    // here the one at the edge came out a little larger (102² against 100² px).
    assert!(faces[0].x > faces[1].x, "the central one first: {faces:?}");
    assert!(faces[1].area() > faces[0].area(), "{faces:?}");
    assert!(faces[0].area() as f32 > 0.8 * faces[1].area() as f32, "{faces:?}");
}

#[test]
fn a_tracked_face_keeps_its_place_when_a_larger_one_appears() {
    let mut fe = front_end();
    let mut alone = image::GrayImage::from_pixel(640, 480, image::Luma([128]));
    paste_face(&mut alone, 100, 100, 1.0);
    let first = match fe.process(&alone) {
        FaceStatus::Face { rect, others: 0, .. } => rect,
        other => panic!("{other:?}"),
    };
    // A larger face joins at the edge; the next detection still follows the tracked one.
    let mut joined = alone.clone();
    paste_face(&mut joined, 304, 80, 1.4);
    let mut detected_with_company = 0;
    for _ in 0..12 {
        if let FaceStatus::Face { rect, others, detected, .. } = fe.process(&joined) {
            assert!(rect.iou(&first) > 0.5, "{rect:?} left {first:?}");
            if detected {
                assert_eq!(others, 1);
                detected_with_company += 1;
            }
        } else {
            panic!("lost the face");
        }
    }
    assert_eq!(detected_with_company, 1);
}

#[test]
fn a_weak_background_hit_is_not_a_face() {
    // Frame 7 of the sample interview: the cascade also fires on the wall beside the shuttle
    // (a larger box than the face, few neighbours).
    let mut src = sample_frames();
    let frame = std::iter::from_fn(|| src.next_frame()).nth(7).expect("frame 7").expect("decodes");
    let cascade = vision::cascade::Cascade::load(&vision::default_cascade()).expect("cascade");
    let raw = cascade.detect_counted(&frame, &FaceConfig::default().detect);
    assert_eq!(raw.len(), 2, "{raw:?}");
    let fe = front_end();
    let faces = fe.detect(&frame);
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = raw.iter().max_by_key(|r| r.1).expect("strongest").0;
    assert_eq!(faces[0], face);
    assert!(raw.iter().any(|r| r.0.area() > face.area()), "the background box is the larger one: {raw:?}");
}

/// The same frame again and again (a still camera).
struct Repeat(image::GrayImage, f32);

impl FrameSource for Repeat {
    fn fps(&self) -> f32 {
        self.1
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, vision::video::VideoError>> {
        Some(Ok(self.0.clone()))
    }
}
