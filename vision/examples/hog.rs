//! `cargo run -p vision --example hog -- UPSAMPLE ADJUST IMAGE...`: dlib's HOG face detector
//! (the committed default) on each image's luma, one JSON line per image:
//! `{"image", "boxes": [[left, top, right, bottom, confidence, filter], ...], "seconds"}`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, upsample, adjust, images @ ..] = args.as_slice() else {
        return Err("usage: hog UPSAMPLE ADJUST IMAGE...".into());
    };
    let detector = vision::hog::HogDetector::load(&vision::default_detector())?;
    for image in images {
        let gray = vision::luma(image::open(image)?);
        let t = std::time::Instant::now();
        let dets = detector.detect(&gray, upsample.parse()?, adjust.parse()?);
        let seconds = t.elapsed().as_secs_f64();
        let boxes: Vec<String> = dets
            .iter()
            .map(|d| {
                let r = d.rect;
                format!("[{},{},{},{},{},{}]", r.left, r.top, r.right, r.bottom, d.confidence, d.filter)
            })
            .collect();
        println!("{{\"image\":{image:?},\"boxes\":[{}],\"seconds\":{seconds}}}", boxes.join(","));
    }
    Ok(())
}
