//! Face boxes against OpenCV's `detectMultiScale` with the same cascades and parameters
//! (scaleFactor 1.1, minNeighbors 3) on real photos: scikit-image's `astronaut` and a grid of
//! twelve `lfw_subset` faces. The photos and OpenCV's boxes are committed fixtures made by
//! `scripts/video_reference.py`; `bench/run video` repeats the comparison live.

use std::path::PathBuf;

use vision::Rect;
use vision::cascade::{Cascade, DetectParams};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gray(name: &str) -> image::GrayImage {
    let img = image::open(root().join("tests/fixtures/faces").join(name)).expect("fixture decodes");
    match img {
        image::DynamicImage::ImageLuma8(g) => g,
        other => vision::to_gray(&other.to_rgb8()),
    }
}

#[test]
fn boxes_match_opencv_with_iou_at_least_0_8() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/faces/reference.json")).expect("reference");
    let r: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    for (image, per_cascade) in r["images"].as_object().expect("images") {
        let g = gray(image);
        for (cascade, boxes) in per_cascade.as_object().expect("cascades") {
            let c = Cascade::load(&root().join("assets").join(cascade)).expect("cascade loads");
            let ours = c.detect(&g, &DetectParams::default());
            let theirs: Vec<Rect> = boxes
                .as_array()
                .expect("boxes")
                .iter()
                .map(|b| {
                    let v: Vec<u32> =
                        b.as_array().expect("box").iter().map(|x| x.as_u64().expect("int") as u32).collect();
                    Rect { x: v[0], y: v[1], w: v[2], h: v[3] }
                })
                .collect();
            let best = |r: &Rect, among: &[Rect]| among.iter().map(|o| r.iou(o)).fold(0.0f32, f32::max);
            let worst = theirs.iter().map(|t| best(t, &ours)).fold(1.0f32, f32::min);
            println!(
                "{image} {cascade}: OpenCV {} boxes, ours {}, worst best-IoU {worst:.3}",
                theirs.len(),
                ours.len()
            );
            assert_eq!(ours.len(), theirs.len(), "{image} {cascade}: ours {ours:?} vs OpenCV {theirs:?}");
            assert!(worst >= 0.8, "{image} {cascade}: ours {ours:?} vs OpenCV {theirs:?}");
            for o in &ours {
                assert!(best(o, &theirs) >= 0.8, "{image} {cascade}: extra box {o:?}");
            }
        }
    }
}
