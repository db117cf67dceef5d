//! Landmarks against dlib itself: the same model file (`shape_predictor_68_face_landmarks.dat`),
//! the same luma image and the same face box give the same 68 points. The reference is dlib
//! 20's own `shape_predictor` (PyPI `dlib-bin`) on every face box of the OpenCV fixtures, as
//! detected and moved/scaled as a tracked box is, recorded in `fixtures/faces/landmarks.json` by
//! `scripts/video_reference.py landmarks`; `bench/run video` repeats the comparison live.
//!
//! dlib hands its points back rounded to whole pixels, so ours are rounded the same way before
//! they are compared.

use std::path::PathBuf;

use vision::Rect;
use vision::shape::ShapePredictor;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Default)]
struct Agreement {
    coords: usize,
    exact: usize,
    max_abs: f32,
}

#[test]
fn landmarks_equal_dlibs_own_predictor() {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{} is missing: run scripts/install_landmark_model.sh (CI does)", predictor.display());
    let sp = ShapePredictor::load(&predictor).expect("model loads");
    let text = std::fs::read_to_string(root().join("tests/fixtures/faces/landmarks.json")).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let faces = r["faces"].as_array().expect("faces");
    assert!(faces.len() >= 50, "the reference holds {} faces", faces.len());
    let mut images = std::collections::HashMap::new();
    let mut a = Agreement::default();
    for face in faces {
        let name = face["image"].as_str().expect("image");
        let gray = images.entry(name.to_owned()).or_insert_with(|| {
            vision::luma(image::open(root().join("tests/fixtures/faces").join(name)).expect("fixture decodes"))
        });
        let b: Vec<u32> =
            face["box"].as_array().expect("box").iter().map(|v| v.as_u64().expect("int") as u32).collect();
        let rect = Rect { x: b[0], y: b[1], w: b[2], h: b[3] };
        let ours = sp.predict(gray, &rect);
        let theirs = face["points"].as_array().expect("points");
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(theirs) {
            for (k, v) in o.iter().enumerate() {
                let d = (v.round() - t[k].as_f64().expect("coordinate") as f32).abs();
                a.coords += 1;
                a.exact += usize::from(d == 0.0);
                a.max_abs = a.max_abs.max(d);
                assert!(d <= 1.0, "{name} {rect:?}: ours {o:?} vs dlib {t}");
            }
        }
    }
    println!("{a:?}");
    // Rounding ties and float order aside, the trees are walked exactly as dlib walks them.
    assert!(a.exact as f32 >= 0.99 * a.coords as f32, "{a:?}");
}
