//! silero-vad (v5, the `If`-free opset-18 export) through tract: a [`features::vad::VoiceActivity`].
//!
//! The model is not committed: `scripts/install_silero_vad.sh` takes it from the PyPI package
//! `silero-vad` (MIT licence) and puts it at [`default_path`]. The device uses it when present
//! and falls back to the energy detector otherwise, logging why.
//!
//! Streaming as silero's own wrapper does: 512-sample chunks (32 ms), each prefixed with the
//! previous chunk's last 64 samples, the recurrent state carried from chunk to chunk.

use std::path::{Path, PathBuf};

use features::FeatureError;
use features::audio::{AudioClip, SAMPLE_RATE};
use features::vad::{SpeechProbabilities, VoiceActivity};
use tract_onnx::prelude::*;

use crate::ModelError;

const CHUNK: usize = 512;
const CONTEXT: usize = 64;
const STATE: [usize; 3] = [2, 1, 128];

/// Where `scripts/install_silero_vad.sh` puts the model: `vad/` of the assets folder
/// ([`features::assets`]).
pub fn default_path() -> PathBuf {
    features::assets::dir().join("vad/silero_vad_op18_ifless.onnx")
}

type Plan = Box<dyn Runnable>;

/// silero-vad, loaded and optimised once.
pub struct SileroVad {
    plan: Plan,
    path: PathBuf,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").field("path", &self.path).finish_non_exhaustive()
    }
}

fn bad(path: &Path, source: impl Into<crate::BoxError>) -> ModelError {
    ModelError::Vad { path: path.to_owned(), source: source.into() }
}

impl SileroVad {
    /// Loads the 16 kHz silero-vad ONNX; a wrong or damaged file is a clear error.
    pub fn load(path: &Path) -> Result<SileroVad, ModelError> {
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| m.with_input_fact(1, tensor0(i64::from(SAMPLE_RATE)).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| bad(path, e))?;
        let plan: Plan = Box::new(plan);
        let vad = SileroVad { plan, path: path.to_owned() };
        // Check the interface once, now, rather than in the middle of a session.
        vad.probabilities(&[0.0; CHUNK]).map_err(|e| bad(path, e))?;
        Ok(vad)
    }

    fn probabilities(&self, samples: &[f32]) -> Result<Vec<f32>, crate::BoxError> {
        let mut state = Tensor::zero::<f32>(&STATE)?;
        let mut context = [0.0f32; CONTEXT];
        let sr = tensor0(i64::from(SAMPLE_RATE));
        let mut out = Vec::with_capacity(samples.len() / CHUNK + 1);
        for chunk in samples.chunks(CHUNK) {
            let mut input = Vec::with_capacity(CONTEXT + CHUNK);
            input.extend_from_slice(&context);
            input.extend_from_slice(chunk);
            input.resize(CONTEXT + CHUNK, 0.0);
            context.copy_from_slice(&input[CHUNK..]);
            let x = Tensor::from_shape(&[1, CONTEXT + CHUNK], &input)?;
            let result = self.plan.run(tvec!(x.into(), sr.clone().into(), state.clone().into()))?;
            let p = result.first().and_then(|t| t.to_plain_array_view::<f32>().ok()?.iter().next().copied());
            let (Some(p), Some(next)) = (p, result.get(1)) else {
                return Err("unexpected outputs (want probability and state)".into());
            };
            out.push(p);
            state = next.clone().into_tensor();
        }
        Ok(out)
    }
}

impl VoiceActivity for SileroVad {
    fn name(&self) -> &str {
        "silero-vad"
    }

    fn speech_probabilities(&self, clip: &AudioClip) -> Result<SpeechProbabilities, FeatureError> {
        let at_rate = clip.to_frontend_rate()?;
        let p = self
            .probabilities(&at_rate.samples)
            .map_err(|source| FeatureError::Vad { path: self.path.clone(), source })?;
        Ok(SpeechProbabilities { frame_ms: 1000.0 * CHUNK as f32 / SAMPLE_RATE as f32, p })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use features::vad::{EnergyVad, SegmenterConfig, utterances};

    fn installed() -> SileroVad {
        let path = default_path();
        assert!(path.exists(), "{} is missing: run scripts/install_silero_vad.sh (CI does)", path.display());
        SileroVad::load(&path).expect("silero-vad loads")
    }

    fn speech(name: &str) -> AudioClip {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../features/tests/fixtures/speech").join(name);
        features::audio::read_wav(&p).expect("fixture")
    }

    #[test]
    fn silero_hears_speech_and_not_silence_and_agrees_with_the_energy_detector() {
        let vad = installed();
        for name in ["us_male_clean.wav", "gb_high_noisy.wav"] {
            // Speech, two seconds of silence, the same speech.
            let s = speech(name);
            let mut samples = s.samples.clone();
            samples.extend(std::iter::repeat_n(0.0, 32_000));
            samples.extend_from_slice(&s.samples);
            let clip = AudioClip { rate: 16_000, samples };
            let p = vad.speech_probabilities(&clip).expect("runs");
            assert_eq!(p.p.len(), clip.samples.len().div_ceil(512));
            let gap = (s.samples.len() / 512 + 8)..((s.samples.len() + 32_000) / 512 - 2);
            assert!(p.p[gap.clone()].iter().all(|&v| v < 0.2), "{name}: silence heard as speech {:?}", &p.p[gap]);
            let u = utterances(&p, &SegmenterConfig::default());
            assert_eq!(u.len(), 2, "{name}: {u:?}");
            // The energy detector, on the clean recording, finds the same two utterances.
            if name.contains("clean") {
                let e =
                    utterances(&EnergyVad.speech_probabilities(&clip).expect("energy"), &SegmenterConfig::default());
                assert_eq!(e.len(), 2, "{e:?}");
                for (a, b) in u.iter().zip(&e) {
                    assert!(
                        a.start_ms.abs_diff(b.start_ms) < 300 && a.end_ms.abs_diff(b.end_ms) < 400,
                        "{u:?} vs {e:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_damaged_model_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("vad.onnx");
        let bytes = std::fs::read(default_path()).expect("installed");
        std::fs::write(&path, &bytes[..bytes.len() / 3]).expect("write");
        let e = SileroVad::load(&path).unwrap_err().to_string();
        assert!(e.contains("vad.onnx"), "{e}");
    }
}
