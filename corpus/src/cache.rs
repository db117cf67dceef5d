//! The feature cache: the device's front-ends run once over a corpus.
//!
//! Layout: `DIR/index.json` (schema hash, options, every session's split, labels, sequence
//! lengths and problems) and `DIR/sessions/NNN.safetensors` (tensors `audio`, `video`, `text`,
//! each `[segments, features]` f32; absent modalities are absent tensors). Files are written to a
//! temporary name and renamed, the index last, so an interrupted build never leaves a file that
//! looks complete. A cache built for another feature schema or other options is stale: opening
//! it is an error, and building over it rebuilds every session.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use features::text::{SentenceEncoder, TextEmbedding, TextSetup, Transcriber, TranscriptSource};
use features::{SchemaHash, Sequence, SessionFeatures, SessionInputs, extract_session, schema};
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use super::daic::Corpus;
use super::{BoxError, CorpusError, Labels, Split};

const MODALITIES: [&str; 3] = ["audio", "video", "text"];

/// Options that change what is cached (part of the cache's identity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheOptions {
    /// Include the interviewer's words in the text features (leaks the label; off by default).
    pub include_interviewer_text: bool,
    /// The text features' sentence embedding (part of the feature schema).
    #[serde(default)]
    pub text_embedding: TextEmbedding,
    /// Where the text's words come from (part of the feature schema): the corpus's transcripts,
    /// or the device's speech recognition over the participant's turns.
    #[serde(default)]
    pub transcripts: TranscriptSource,
}

impl CacheOptions {
    /// The options' text front-end.
    pub fn text(&self) -> TextSetup {
        TextSetup { embedding: self.text_embedding, transcripts: self.transcripts }
    }
}

/// The text front-ends a build runs: exactly those its options name.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFrontEnds<'a> {
    /// The sentence encoder; none for the built-in hashed embedding.
    pub encoder: Option<&'a dyn SentenceEncoder>,
    /// The speech recogniser; needed for machine transcripts only.
    pub transcriber: Option<&'a dyn Transcriber>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedSession {
    pub id: u32,
    pub split: Split,
    pub labels: Option<Labels>,
    /// The front-ends' quality flags (`protocol::ResultFlags` bits).
    pub flags: u32,
    /// Segments per modality (audio, video, text); 0 = absent.
    pub lengths: [usize; 3],
    pub audio_seconds: f32,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    /// Hex feature-schema hash of the front-ends that built the cache.
    pub schema: String,
    pub frontend_version: String,
    pub options: CacheOptions,
    pub corpus: String,
    pub sessions: Vec<CachedSession>,
}

/// What a build did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildReport {
    pub built: usize,
    pub reused: usize,
    /// An existing cache was stale and was rebuilt.
    pub was_stale: bool,
    pub audio_hours: f32,
    pub seconds: f32,
}

fn cache_err(dir: &Path, detail: impl Into<String>) -> CorpusError {
    CorpusError::Cache { path: dir.to_owned(), detail: detail.into() }
}

/// A file of the cache at `dir` that could not be read or written: `what` names it.
fn cache_file(dir: &Path, what: impl Into<String>, source: impl Into<BoxError>) -> CorpusError {
    CorpusError::CacheFile { path: dir.to_owned(), what: what.into(), source: source.into() }
}

fn session_file(dir: &Path, id: u32) -> PathBuf {
    dir.join("sessions").join(format!("{id}.safetensors"))
}

fn read_index(dir: &Path) -> Result<Option<CacheIndex>, CorpusError> {
    let p = dir.join("index.json");
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| cache_file(dir, "index.json", e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(cache_file(dir, "index.json", e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn encode(f: &SessionFeatures, id: u32, schema: SchemaHash) -> Result<Vec<u8>, BoxError> {
    let seqs = [&f.audio, &f.video, &f.text];
    let bytes: Vec<Option<Vec<u8>>> =
        seqs.iter().map(|s| s.as_ref().map(|s| s.data.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let mut views = Vec::new();
    for ((name, seq), b) in MODALITIES.iter().zip(seqs).zip(&bytes) {
        if let (Some(seq), Some(b)) = (seq, b) {
            views.push((*name, TensorView::new(Dtype::F32, vec![seq.len(), seq.dim], b)?));
        }
    }
    let meta = HashMap::from([
        ("schema".to_owned(), schema.to_string()),
        ("session".to_owned(), id.to_string()),
        ("flags".to_owned(), f.flags.bits().to_string()),
    ]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

fn decode(bytes: &[u8]) -> Result<SessionFeatures, BoxError> {
    let st = SafeTensors::deserialize(bytes)?;
    let (_, meta) = SafeTensors::read_metadata(bytes)?;
    let flags = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("flags"))
        .and_then(|v| v.parse().ok())
        .map_or(protocol::ResultFlags::empty(), protocol::ResultFlags::from_bits_retain);
    let get = |name: &str| -> Result<Option<Sequence>, BoxError> {
        match st.tensor(name) {
            Ok(t) => {
                if t.dtype() != Dtype::F32 || t.shape().len() != 2 {
                    return Err(format!("tensor {name}: expected 2-D f32").into());
                }
                let data = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                Ok(Some(Sequence { dim: t.shape()[1], data }))
            }
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    // How much signal the inputs had is the device's concern (its presence rule), not kept here.
    let usable = features::Usable::default();
    Ok(SessionFeatures { audio: get("audio")?, video: get("video")?, text: get("text")?, flags, usable })
}

/// Builds (or completes) the cache for every available participant of `corpus`. `text` must
/// hold exactly the front-ends `options` ask for: a sentence encoder for an embedding other
/// than the built-in hashed one, a transcriber for machine transcripts (which also leave out
/// the interviewer's words: the device transcribes the participant only).
pub fn build(
    corpus: &Corpus,
    dir: &Path,
    options: CacheOptions,
    text: TextFrontEnds<'_>,
    progress: impl Fn() + Sync,
) -> Result<BuildReport, CorpusError> {
    let started = Instant::now();
    let given = text.encoder.map_or(TextEmbedding::Hashed, |e| e.embedding());
    if given != options.text_embedding {
        return Err(cache_err(
            dir,
            format!("the options ask for the {} text embedding, the encoder given is {given}", options.text_embedding),
        ));
    }
    let machine = options.transcripts == TranscriptSource::Asr;
    if machine != text.transcriber.is_some() {
        let detail = if machine {
            "machine transcripts need a transcriber (scripts/install_whisper.sh)"
        } else {
            "a transcriber was given for pushed transcripts"
        };
        return Err(cache_err(dir, detail));
    }
    if machine && options.include_interviewer_text {
        return Err(cache_err(dir, "machine transcripts hold the participant's words only: no interviewer text"));
    }
    let io = |e: std::io::Error| cache_file(dir, "sessions/", e);
    std::fs::create_dir_all(dir.join("sessions")).map_err(io)?;
    let schema_hash = options.text().schema_hash();
    let want_schema = schema_hash.to_string();
    let old = read_index(dir).ok().flatten();
    let fresh = old.as_ref().is_some_and(|i| i.schema == want_schema && i.options == options);
    let was_stale = old.is_some() && !fresh;
    if was_stale {
        tracing::warn!(path = %dir.display(), "feature cache is stale (other schema or options); rebuilding");
        for entry in std::fs::read_dir(dir.join("sessions")).map_err(io)?.flatten() {
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    let reusable: HashMap<u32, CachedSession> = if fresh {
        old.map(|i| i.sessions.into_iter().map(|s| (s.id, s)).collect()).unwrap_or_default()
    } else {
        HashMap::new()
    };

    let todo: Vec<_> = corpus.available().cloned().collect();
    let results: Vec<Result<(CachedSession, bool), CorpusError>> = todo
        .par_iter()
        .map(|p| {
            let file = session_file(dir, p.id);
            if let Some(s) = reusable.get(&p.id).filter(|_| file.exists()) {
                progress();
                return Ok((s.clone(), false));
            }
            let s = corpus.load(p.id);
            let f = extract_session(&SessionInputs {
                audio: s.audio.as_ref(),
                analysed_audio: None,
                answer_audio: None,
                landmarks: s.landmarks.as_ref(),
                transcript: s.transcript.as_deref(),
                include_interviewer_text: options.include_interviewer_text,
                // DAIC-WOZ and the synthetic corpus have timed transcripts; the energy detector
                // only segments a session that lacks one.
                vad: None,
                text_encoder: text.encoder,
                transcriber: text.transcriber,
                transcripts: options.transcripts,
            });
            let bytes = encode(&f, p.id, schema_hash).map_err(|e| cache_file(dir, format!("session {}", p.id), e))?;
            write_atomic(&file, &bytes).map_err(io)?;
            progress();
            let len = |q: &Option<Sequence>| q.as_ref().map_or(0, Sequence::len);
            Ok((
                CachedSession {
                    id: p.id,
                    split: p.split,
                    labels: p.labels.clone(),
                    flags: f.flags.bits(),
                    lengths: [len(&f.audio), len(&f.video), len(&f.text)],
                    audio_seconds: s.audio.as_ref().map_or(0.0, |a| a.duration_s()),
                    problems: s.problems.iter().map(ToString::to_string).collect(),
                },
                true,
            ))
        })
        .collect();
    let mut sessions = Vec::new();
    let mut built = 0;
    for r in results {
        let (s, new) = r?;
        built += usize::from(new);
        sessions.push(s);
    }
    sessions.sort_by_key(|s| s.id);
    let audio_hours = sessions.iter().map(|s| s.audio_seconds).sum::<f32>() / 3600.0;
    let index = CacheIndex {
        schema: want_schema,
        frontend_version: schema::FRONTEND_VERSION.to_owned(),
        options,
        corpus: corpus.root.display().to_string(),
        sessions,
    };
    let json = serde_json::to_vec_pretty(&index).map_err(|e| cache_file(dir, "index.json", e))?;
    write_atomic(&dir.join("index.json"), &json).map_err(io)?;
    Ok(BuildReport {
        built,
        reused: index.sessions.len() - built,
        was_stale,
        audio_hours,
        seconds: started.elapsed().as_secs_f32(),
    })
}

/// A built cache, checked against this build's feature schemas.
#[derive(Debug, Clone)]
pub struct FeatureCache {
    dir: PathBuf,
    pub index: CacheIndex,
}

impl FeatureCache {
    pub fn open(dir: &Path) -> Result<FeatureCache, CorpusError> {
        let index =
            read_index(dir)?.ok_or_else(|| cache_err(dir, "no index.json: build it with `mimml-lab corpus cache`"))?;
        let want = index.options.text().schema_hash().to_string();
        if index.schema != want {
            return Err(cache_err(
                dir,
                format!(
                    "stale: built for feature schema {}, the front-ends now compute {want} ({}); rebuild it",
                    index.schema,
                    index.options.text()
                ),
            ));
        }
        Ok(FeatureCache { dir: dir.to_owned(), index })
    }

    /// The feature schema the cache was built with.
    pub fn schema(&self) -> SchemaHash {
        self.index.options.text().schema_hash()
    }

    pub fn sessions(&self, split: Split) -> impl Iterator<Item = &CachedSession> {
        self.index.sessions.iter().filter(move |s| s.split == split)
    }

    pub fn load(&self, id: u32) -> Result<SessionFeatures, CorpusError> {
        let p = session_file(&self.dir, id);
        let bytes = std::fs::read(&p).map_err(|e| cache_file(&self.dir, format!("session {id}"), e))?;
        decode(&bytes).map_err(|e| cache_file(&self.dir, format!("session {id}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_through_safetensors() {
        let mut a = Sequence::new(2);
        a.push(&[1.0, -2.5]);
        a.push(&[f32::MAX, 0.0]);
        let f = SessionFeatures {
            audio: Some(a),
            video: None,
            text: Some(Sequence::new(3)),
            flags: protocol::ResultFlags::from_bits_retain(6),
            usable: features::Usable::default(),
        };
        let back = decode(&encode(&f, 7, schema::schema_hash()).expect("encodes")).expect("decodes");
        assert_eq!(back, f);
        assert!(decode(b"not safetensors").is_err());
    }
}
