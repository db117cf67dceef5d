//! Corpora: the DAIC-WOZ distribution, its synthetic twin, and the feature cache.
//!
//! * [`daic`]: reads the real layout — `NNN_P/` folders or `NNN_P.zip` archives (members read
//!   one at a time, never extracted), the AVEC 2017 split files, transcripts, WAV, CLNF files.
//!   Every problem is a [`Problem`] naming session, file and line; nothing panics and a bad
//!   session never stops the others from loading.
//! * [`synth`]: writes a synthetic corpus in exactly that layout, with depression planted in
//!   every modality, so the real reader is what reads it.
//! * [`cache`]: runs [`features::extract_session`] — the device's own front-ends — over a corpus
//!   and stores per-session sequences as safetensors, keyed by the feature-schema hash.

pub mod cache;
pub mod daic;
pub mod synth;

use std::fmt;
use std::path::PathBuf;

/// Any error, boxed: the cause of a cache file that could not be read or written.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which split a participant belongs to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    #[default]
    Train,
    Dev,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];
}

impl std::str::FromStr for Split {
    type Err = String;

    /// `train`, `dev` or `test`.
    fn from_str(s: &str) -> Result<Split, String> {
        Split::ALL
            .into_iter()
            .find(|split| split.to_string() == s)
            .ok_or_else(|| format!("unknown split {s:?} (train, dev, test)"))
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        })
    }
}

/// The PHQ-8 item names, in the order of the split files.
pub const PHQ8_ITEMS: [&str; 8] = [
    "PHQ8_NoInterest",
    "PHQ8_Depressed",
    "PHQ8_Sleep",
    "PHQ8_Tired",
    "PHQ8_Appetite",
    "PHQ8_Failure",
    "PHQ8_Concentrating",
    "PHQ8_Moving",
];

/// A participant's labels from the split files.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    /// PHQ-8 ≥ 10.
    pub depressed: bool,
    pub phq8: u8,
    /// 0 female, 1 male (as in the split files).
    pub gender: u8,
    /// Item scores (0–3 each); absent in the test split file.
    pub items: Option<[u8; 8]>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Participant {
    pub id: u32,
    pub split: Split,
    /// `None` where the split file carries no labels (the unlabelled test file).
    pub labels: Option<Labels>,
}

/// Something wrong with the corpus: which session (if any), which file, which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub session: Option<u32>,
    pub file: String,
    /// 1-based; 0 = the file as a whole.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.session {
            write!(f, "session {s}: ")?;
        }
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Problem {
    /// A problem from a front-end error, which already names file and line.
    pub(crate) fn from_feature(session: u32, e: &features::FeatureError) -> Problem {
        use features::FeatureError as F;
        // The message is the error's causes (the file is named separately).
        let causes = |e: &dyn std::error::Error| {
            let mut parts = Vec::new();
            let mut cause = e.source();
            while let Some(c) = cause {
                parts.push(c.to_string());
                cause = c.source();
            }
            parts.join(": ")
        };
        let (file, line, message) = match e {
            F::Io { path, .. } | F::Wav { path, .. } => (path.clone(), 0, causes(e)),
            F::TruncatedWav { path, .. } | F::Decode { path, .. } => (path.clone(), 0, format!("{e}: {}", causes(e))),
            F::TruncatedAudio { path, .. } => (path.clone(), 0, e.to_string()),
            F::UnsupportedAudio { path, detail } => (path.clone(), 0, detail.clone()),
            F::Transcript { path, line, detail } | F::Landmarks { path, line, detail } => {
                (path.clone(), *line, detail.clone())
            }
            F::Vad { path, .. } => (path.display().to_string(), 0, causes(e)),
            F::Encoder { name, .. } => (name.clone(), 0, causes(e)),
            F::EncoderWidth { name, .. } => (name.clone(), 0, e.to_string()),
        };
        Problem { session: Some(session), file, line, message }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("corpus folder {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no DAIC-WOZ sessions (NNN_P/ folders or NNN_P.zip files) and no split files")]
    Empty { path: PathBuf },
    #[error("feature cache {path}: {detail}")]
    Cache { path: PathBuf, detail: String },
    #[error("feature cache {path}: {what}")]
    CacheFile {
        path: PathBuf,
        what: String,
        #[source]
        source: BoxError,
    },
}
