//! `bench/run video`: face detection on a 640×480 frame against OpenCV's `detectMultiScale`
//! (same cascade, scaleFactor 1.1, minNeighbors 3, one thread each) in the same run; landmark
//! time per face against dlib's own predictor; the live box check against OpenCV and landmark
//! check against dlib on the face fixtures; and the whole video front-end (JPEG decode, luma,
//! detection every 10th frame with tracking in between, 68 landmarks, face measures) in frames
//! per second on one core (cascade and HOG detector); dlib's HOG face detector against dlib's
//! own on the group photo (one thread each), faces found there and on the talking-head clip.
//!
//! Usage (through bench/run, which makes the reference venv): `video PYTHON`.

use anyhow::Context;
use vision::Rect;
use vision::cascade::{Cascade, DetectParams};
use vision::face::{FaceConfig, FaceDetector, FaceFrontEnd};

fn python(python: &str, args: &[&str]) -> anyhow::Result<String> {
    bench::reference_script(python, "video_reference.py", args)
}

fn main() -> anyhow::Result<()> {
    let py = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let tmp = tempfile::tempdir()?;
    let cascade_path = vision::default_cascade();
    let cascade = Cascade::load(&cascade_path)?;

    // A 640×480 frame: the astronaut photo scaled to 480 rows on a grey canvas.
    let astronaut = vision::luma(image::open(bench::repo().join("vision/tests/fixtures/faces/astronaut.png"))?);
    let mut scaled = Vec::new();
    vision::cascade::resize_bilinear(&astronaut, 480, 480, &mut scaled);
    let mut frame = image::GrayImage::from_pixel(640, 480, image::Luma([128]));
    for (i, &v) in scaled.iter().enumerate() {
        frame.put_pixel(80 + (i % 480) as u32, (i / 480) as u32, image::Luma([v]));
    }
    let png = tmp.path().join("frame640.png");
    frame.save(&png)?;

    let params = DetectParams::default();
    let faces = cascade.detect(&frame, &params);
    let ours_s = bench::best_of(5, || {
        std::hint::black_box(cascade.detect(&frame, &params));
    });
    let cv: serde_json::Value = serde_json::from_str(&python(
        &py,
        &["time", &png.display().to_string(), &cascade_path.display().to_string(), "5"],
    )?)?;
    let cv_s = cv["seconds"].as_f64().context("OpenCV timing")?;
    let ratio = ours_s / cv_s;
    println!(
        "detection 640×480 ({} face(s)): ours {:.1} ms, OpenCV {} {:.1} ms → ratio {ratio:.2} (goal ≤ 1.0)",
        faces.len(),
        ours_s * 1e3,
        cv["opencv"],
        cv_s * 1e3
    );

    // Landmarks per face.
    let predictor_path = vision::default_predictor();
    let predictor = vision::shape::ShapePredictor::load(&predictor_path)
        .with_context(|| format!("{}: run scripts/install_landmark_model.sh", predictor_path.display()))?;
    let face = *faces.first().context("no face found in the benchmark frame")?;
    let n = 200;
    let lm_s = bench::best_of(3, || {
        for _ in 0..n {
            std::hint::black_box(predictor.predict(&frame, &face));
        }
    }) / f64::from(n);
    let dlib: serde_json::Value = serde_json::from_str(&python(
        &py,
        &[
            "landmark-time",
            &png.display().to_string(),
            &predictor_path.display().to_string(),
            &face.x.to_string(),
            &face.y.to_string(),
            &face.w.to_string(),
            &face.h.to_string(),
            "3",
        ],
    )?)?;
    let dlib_s = dlib["seconds"].as_f64().context("dlib timing")?;
    let lm_ratio = lm_s / dlib_s;
    println!(
        "landmarks: ours {:.2} ms per face, dlib {} {:.2} ms (its Python binding, same model and box) → ratio {lm_ratio:.2}",
        lm_s * 1e3,
        dlib["dlib"],
        dlib_s * 1e3
    );

    // Live box check against OpenCV on the fixtures.
    let live = tmp.path().join("faces");
    std::fs::create_dir(&live)?;
    for e in std::fs::read_dir(bench::repo().join("vision/tests/fixtures/faces"))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "png") {
            std::fs::copy(&p, live.join(p.file_name().context("name")?))?;
        }
    }
    let cascades = [cascade_path.clone(), bench::repo().join("vision/assets/lbpcascade_frontalface.xml")];
    let mut args = vec!["reference".to_owned(), live.display().to_string()];
    args.extend(cascades.iter().map(|c| c.display().to_string()));
    python(&py, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(live.join("reference.json"))?)?;
    let mut worst = 1.0f32;
    for (img, per) in r["images"].as_object().context("images")? {
        let gray = vision::luma(image::open(live.join(img))?);
        for (name, boxes) in per.as_object().context("cascades")? {
            let c = Cascade::load(&bench::repo().join("vision/assets").join(name))?;
            let ours = c.detect(&gray, &params);
            let theirs: Vec<Rect> = boxes
                .as_array()
                .context("boxes")?
                .iter()
                .filter_map(|b| {
                    let v: Vec<u32> = b.as_array()?.iter().filter_map(|x| x.as_u64()).map(|x| x as u32).collect();
                    (v.len() == 4).then(|| Rect { x: v[0], y: v[1], w: v[2], h: v[3] })
                })
                .collect();
            let iou = theirs
                .iter()
                .map(|t| ours.iter().map(|o| o.iou(t)).fold(0.0f32, f32::max))
                .fold(if ours.len() == theirs.len() { 1.0f32 } else { 0.0 }, f32::min);
            println!("{img:16} {name:38} OpenCV {} boxes, ours {}, worst IoU {iou:.3}", theirs.len(), ours.len());
            worst = worst.min(iou);
        }
    }

    // Live landmark check against dlib on the same boxes (as detected, moved and scaled).
    python(&py, &["landmarks", &live.display().to_string(), &predictor_path.display().to_string()])?;
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(live.join("landmarks.json"))?)?;
    let (mut coords, mut exact, mut max_px) = (0usize, 0usize, 0f32);
    for f in r["faces"].as_array().context("faces")? {
        let gray = vision::luma(image::open(live.join(f["image"].as_str().context("image")?))?);
        let b: Vec<u32> =
            f["box"].as_array().context("box")?.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect();
        let ours = predictor.predict(&gray, &Rect { x: b[0], y: b[1], w: b[2], h: b[3] });
        for (o, t) in ours.iter().zip(f["points"].as_array().context("points")?) {
            for (k, v) in o.iter().enumerate() {
                let d = (v.round() - t[k].as_f64().context("coordinate")? as f32).abs();
                coords += 1;
                exact += usize::from(d == 0.0);
                max_px = max_px.max(d);
            }
        }
    }
    let exact_share = exact as f64 / coords.max(1) as f64;
    println!(
        "landmarks against dlib: {} faces, {:.4} of coordinates identical (whole pixels, as dlib returns them), max |Δ| {max_px:.0} px",
        coords / (2 * 68),
        exact_share
    );
    // The whole front-end over 300 moving 640×480 frames as a Motion-JPEG stream.
    let mut stream = Vec::new();
    for i in 0..300u32 {
        let dx = ((i as f32 * 0.05).sin() * 40.0) as i64;
        let moved = image::GrayImage::from_fn(640, 480, |x, y| {
            let sx = (i64::from(x) - dx).clamp(0, 639) as u32;
            *frame.get_pixel(sx, y)
        });
        let mut jpeg = Vec::new();
        moved.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
        stream.extend_from_slice(&jpeg);
    }
    let mjpeg = tmp.path().join("v.mjpeg");
    std::fs::write(&mjpeg, &stream)?;
    let hog = vision::hog::HogDetector::load(&vision::default_detector())?;
    let whole = |detector: FaceDetector, predictor| -> anyhow::Result<(f64, vision::face::VideoStats)> {
        let mut fe = FaceFrontEnd::new(detector, predictor, FaceConfig::default())?;
        let mut stats = Default::default();
        let whole_s = bench::best_of(2, || {
            let mut src = vision::video::MjpegFile::open(&mjpeg, 30.0).expect("stream opens");
            let (t, s) = fe.track(&mut src);
            let segments = features::segment::fixed_windows(t.duration_ms());
            std::hint::black_box(features::landmarks::segment_features(&t, &segments));
            stats = s;
        });
        Ok((300.0 / whole_s, stats))
    };
    let (fps, stats) = whole(FaceDetector::Cascade(cascade), predictor.clone())?;
    println!(
        "whole video front-end, cascade: {fps:.0} frames/s on one core (goal ≥ 30) — {} of {} frames with a face, {} detections",
        stats.with_face, stats.frames, stats.detections
    );
    let (hog_fps, hog_stats) = whole(FaceDetector::Hog(hog.clone()), predictor.clone())?;
    println!(
        "whole video front-end, HOG (default): {hog_fps:.0} frames/s on one core (goal ≥ 30) — {} of {} frames with a face, {} detections",
        hog_stats.with_face, hog_stats.frames, hog_stats.detections
    );

    // HOG against dlib on the group photo (its luma, as the reference reads it), one thread each.
    let external = bench::repo().join("tests/data/external");
    let group =
        vision::luma(image::open(external.join("faces/insightface/t1.jpg")).context("scripts/install_test_data.sh")?);
    let group_pgm = tmp.path().join("group.pgm");
    let mut pgm = format!("P5\n{} {}\n255\n", group.width(), group.height()).into_bytes();
    pgm.extend_from_slice(group.as_raw());
    std::fs::write(&group_pgm, pgm)?;
    let hog_faces = hog.detect(&group, 0, 0.0).len();
    let hog_s = bench::best_of(5, || {
        std::hint::black_box(hog.detect(&group, 0, 0.0));
    });
    let dl: serde_json::Value =
        serde_json::from_str(&python(&py, &["hog-time", &group_pgm.display().to_string(), "0", "5"])?)?;
    let dlib_hog_s = dl["seconds"].as_f64().context("dlib timing")?;
    let hog_ratio = hog_s / dlib_hog_s;
    println!(
        "HOG detection {}×{} group photo: ours {:.1} ms ({hog_faces} faces), dlib {} {:.1} ms ({} faces) → ratio {hog_ratio:.2} (goal ≤ 1.0)",
        group.width(),
        group.height(),
        hog_s * 1e3,
        dl["dlib"],
        dlib_hog_s * 1e3,
        dl["faces"]
    );
    let mut fe = FaceFrontEnd::new(FaceDetector::Hog(hog), predictor, FaceConfig::default())?;
    let group_found = fe.detect(&group).len();
    let mut clip = vision::video::Y4mFile::open(&external.join("video/carphone.y4m"))?;
    let (_, clip_stats) = fe.track(&mut clip);
    println!(
        "front-end defaults: group photo {group_found} of 6 faces; talking-head clip {} of {} frames with a face",
        clip_stats.with_face, clip_stats.frames
    );

    println!(
        "RESULT video detect_ours_ms={:.1} detect_opencv_ms={:.1} detect_ratio={ratio:.2} landmarks_ms={:.2} landmarks_dlib_ms={:.2} landmarks_ratio={lm_ratio:.2} frontend_fps={fps:.0} frontend_hog_fps={hog_fps:.0} hog_ms={:.1} hog_dlib_ms={:.1} hog_ratio={hog_ratio:.2} group_faces={group_found} clip_frames_with_face={}/{} min_iou_vs_opencv={worst:.3} landmarks_identical_vs_dlib={exact_share:.4} landmarks_max_px_vs_dlib={max_px:.0}",
        ours_s * 1e3,
        cv_s * 1e3,
        lm_s * 1e3,
        dlib_s * 1e3,
        hog_s * 1e3,
        dlib_hog_s * 1e3,
        clip_stats.with_face,
        clip_stats.frames
    );
    Ok(())
}
