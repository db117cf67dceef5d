//! Detects faces in an image and prints their 68 landmarks: `landmarks IMAGE CASCADE PREDICTOR`.

use std::path::PathBuf;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [img, cascade, predictor] = &args[..] else {
        anyhow::bail!("usage: landmarks IMAGE CASCADE PREDICTOR");
    };
    let gray = vision::to_gray(&image::open(img)?.to_rgb8());
    let c = vision::cascade::Cascade::load(cascade)?;
    let t = Instant::now();
    let p = vision::shape::ShapePredictor::load(predictor)?;
    println!("predictor: {} points, loaded in {:.2} s", p.points(), t.elapsed().as_secs_f32());
    for face in c.detect(&gray, &Default::default()) {
        let t = Instant::now();
        let pts = p.predict(&gray, &face);
        println!("face {face:?}: landmarks in {:.3} ms", t.elapsed().as_secs_f64() * 1e3);
        for (i, q) in pts.iter().enumerate() {
            println!("{i} {:.1} {:.1}", q[0], q[1]);
        }
    }
    Ok(())
}
