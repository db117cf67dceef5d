//! Recordings that are not plain PCM WAV — µ-law, A-law and ADPCM WAV (telephony), FLAC, Ogg
//! Vorbis and MP3 (field recorders, phones) — decoded by symphonia, then treated like a WAV:
//! channels averaged, resampled to the front-end rate.

use std::fs::File;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::AudioClip;
use crate::FeatureError;

/// Decodes `path` (format known from its content, the extension only as a hint) to mono at its
/// own rate. A file that stops before the length its header announces, a damaged packet or a
/// format symphonia does not know is a clear error naming the file; nothing is returned half.
pub fn decode(path: &Path) -> Result<AudioClip, FeatureError> {
    let origin = path.display().to_string();
    let p = || origin.clone();
    let file = File::open(path).map_err(|source| FeatureError::Io { path: p(), source })?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    // Gapless: MP3 encoder delay and padding are removed, as libsndfile (mpg123) does.
    let format_opts = FormatOptions { enable_gapless: true, ..Default::default() };
    let fail = |at_s: Option<f32>, source: SymError| FeatureError::Decode { path: p(), at_s, source };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| fail(None, e))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| FeatureError::UnsupportedAudio { path: p(), detail: "no audio track".into() })?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    let rate = params
        .sample_rate
        .ok_or_else(|| FeatureError::UnsupportedAudio { path: p(), detail: "no sample rate".into() })?;
    let mut decoder =
        symphonia::default::get_codecs().make(&params, &DecoderOptions::default()).map_err(|e| fail(None, e))?;
    let mut mono: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let at = |n: usize| Some(n as f32 / rate as f32);
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(fail(at(mono.len()), e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = decoder.decode(&packet).map_err(|e| fail(at(mono.len()), e))?;
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        let b = match &mut buf {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        b.copy_interleaved_ref(decoded);
        mono.extend(b.samples().chunks_exact(channels).map(|c| c.iter().sum::<f32>() / channels as f32));
    }
    if let Some(expected) = params.n_frames {
        // Gapless trimming can leave the count a few frames either side of the header's.
        let trimmed = u64::from(params.delay.unwrap_or(0)) + u64::from(params.padding.unwrap_or(0));
        if (mono.len() as u64) + trimmed < expected {
            return Err(FeatureError::TruncatedAudio { path: p(), frames: mono.len() as u64, expected });
        }
    }
    Ok(AudioClip { rate, samples: mono })
}
