//! `cargo run -p vision --example luma -- IMAGE OUT.pgm`: the luma the face front-end sees for an
//! image file (its own decoder and OpenCV's RGB → gray), as a binary PGM, so that reference tools
//! (`scripts/video_reference.py landmarks-real`) run on exactly the same pixels.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else { return Err("usage: luma IMAGE OUT.pgm".into()) };
    let gray = vision::luma(image::open(input)?);
    let mut bytes = format!("P5\n{} {}\n255\n", gray.width(), gray.height()).into_bytes();
    bytes.extend_from_slice(gray.as_raw());
    std::fs::write(output, bytes)?;
    Ok(())
}
