//! Transcribes recordings with the installed Whisper tiny.en: `transcribe FILE...` prints each
//! window's tokens, no-speech probability and text, and the time taken.

use std::path::Path;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let whisper = runtime::whisper::Whisper::load(&runtime::whisper::default_dir())?;
    println!("loaded in {:.2} s", t0.elapsed().as_secs_f64());
    for file in std::env::args().skip(1) {
        let clip = features::audio::read_audio(Path::new(&file))?;
        let t = Instant::now();
        let tr = whisper.transcribe(&clip.samples)?;
        let secs = t.elapsed().as_secs_f64();
        println!("{file}: {:.2} s of audio in {secs:.2} s", clip.duration_s());
        for w in &tr.windows {
            println!(
                "  [{:.0} s] no_speech {:.3} avg_logprob {:.3} ratio {:.2} silent {} tokens {:?}",
                w.start_s, w.no_speech_prob, w.avg_logprob, w.compression_ratio, w.silent, w.tokens
            );
        }
        println!("  text: {}", tr.text);
    }
    Ok(())
}
