//! The ALSA microphone path for real, without a sound card: ALSA's `file` plugin plays a raw
//! PCM file into a capture PCM, and `mimml-device mic` records it through alsa-lib.
#![cfg(feature = "alsa")]

use std::path::Path;
use std::process::Command;

fn asound_conf(dir: &Path, raw: &Path) -> std::path::PathBuf {
    let conf = dir.join("asound.conf");
    let text = format!(
        "pcm.fromfile {{\n  type file\n  slave.pcm {{ type null }}\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
        raw.display()
    );
    std::fs::write(&conf, text).expect("write conf");
    conf
}

#[test]
fn the_microphone_records_exactly_what_the_pcm_delivers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let speech = features::audio::read_wav(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001/audio.wav"),
    )
    .expect("sample audio");
    let pcm: Vec<i16> = speech.samples[..32_000].iter().map(|&v| (v * 32768.0).round() as i16).collect();
    let raw = dir.path().join("in.raw");
    std::fs::write(&raw, pcm.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("write raw");
    let out_wav = dir.path().join("out.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-device"))
        .env("ALSA_CONFIG_PATH", asound_conf(dir.path(), &raw))
        .args(["mic", "--pcm", "fromfile", "--seconds", "1.2", "--out"])
        .arg(&out_wav)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("quality ok"), "{stdout}");
    let got: Vec<i16> =
        hound::WavReader::open(&out_wav).expect("wav").into_samples::<i16>().map(|s| s.expect("sample")).collect();
    assert_eq!(got.len(), 19_200, "1.2 s at 16 kHz");
    assert_eq!(&got[..], &pcm[..got.len()], "recorded samples differ from the PCM's");
}

#[test]
fn an_unknown_pcm_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mimml-device"))
        .env("ALSA_CONFIG_PATH", asound_conf(dir.path(), &dir.path().join("none.raw")))
        .args(["mic", "--pcm", "no-such-pcm", "--seconds", "0.2", "--out"])
        .arg(dir.path().join("x.wav"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-pcm"), "{err}");
}
