//! `cargo run -p vision --example hog -- UPSAMPLE ADJUST IMAGE...`: dlib's HOG face detector
//! (the committed default) on each image's luma, one JSON line per image:
//! `{"image", "boxes": [[left, top, right, bottom, confidence, filter], ...], "seconds"}`
//! (best of five runs).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, upsample, adjust, images @ ..] = args.as_slice() else {
        return Err("usage: hog UPSAMPLE ADJUST IMAGE...".into());
    };
    let detector = vision::hog::HogDetector::load(&vision::default_detector())?;
    for image in images {
        let gray = vision::luma(image::open(image)?);
        // Best of five: the first run pays for page faults.
        let (mut dets, mut seconds) = (Vec::new(), f64::INFINITY);
        for _ in 0..5 {
            let t = std::time::Instant::now();
            dets = detector.detect(&gray, upsample.parse()?, adjust.parse()?);
            seconds = seconds.min(t.elapsed().as_secs_f64());
        }
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
