//! The DAIC-WOZ reader (see `shared/reference/daic-woz.md`).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use features::audio::{AudioClip, read_wav_from};
use features::chain;
use features::landmarks::{LandmarkTrack, read_clnf};
use features::text::{Utterance, parse_transcript};
use rayon::prelude::*;

use super::{BoxError, CorpusError, Labels, PHQ8_ITEMS, Participant, Problem, Split};

/// Split files, in priority order: a participant listed in two is kept in the first.
const SPLIT_FILES: [(Split, &str); 4] = [
    (Split::Train, "train_split_Depression_AVEC2017.csv"),
    (Split::Dev, "dev_split_Depression_AVEC2017.csv"),
    (Split::Test, "full_test_split.csv"),
    (Split::Test, "test_split_Depression_AVEC2017.csv"),
];

/// Sessions the corpus documentation lists as flawed: reported as notes, still loaded.
pub const KNOWN_ISSUES: [(u32, &str); 9] = [
    (318, "known timing/transcript issues"),
    (321, "known timing/transcript issues"),
    (341, "known timing/transcript issues"),
    (362, "known timing/transcript issues"),
    (373, "long interruption in the recording"),
    (444, "long interruption in the recording"),
    (451, "transcript lacks some parts"),
    (458, "transcript lacks some parts"),
    (480, "transcript lacks some parts"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Dir(PathBuf),
    Zip(PathBuf),
}

/// A corpus folder: split files plus sessions on disk. Opening reads only the split files and
/// the folder listing; sessions are read on demand with [`Corpus::load`].
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    participants: BTreeMap<u32, Participant>,
    sources: BTreeMap<u32, Source>,
    /// Written by [`super::synth`]: the corpus is synthetic (no DAIC-WOZ known-issue notes).
    pub synthetic: bool,
    /// Problems found while opening (split files, folder layout).
    pub problems: Vec<Problem>,
}

/// A numeric table (CLNF pose, gaze, AU files): header names and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f32>>,
}

/// Everything read for one session. Missing or unreadable parts are `None`, with a problem.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub id: u32,
    pub audio: Option<AudioClip>,
    /// All utterances, both speakers; the feature code selects the participant's.
    pub transcript: Option<Vec<Utterance>>,
    pub landmarks: Option<LandmarkTrack>,
    pub pose: Option<Table>,
    pub gaze: Option<Table>,
    pub aus: Option<Table>,
    pub problems: Vec<Problem>,
}

fn session_id(name: &str) -> Option<(u32, bool)> {
    let (stem, zip) = match name.strip_suffix(".zip") {
        Some(s) => (s, true),
        None => (name, false),
    };
    stem.strip_suffix("_P").and_then(|n| n.parse().ok()).map(|id| (id, zip))
}

impl Corpus {
    pub fn open(root: &Path) -> Result<Corpus, CorpusError> {
        let io = |source| CorpusError::Io { path: root.to_owned(), source };
        let mut sources = BTreeMap::new();
        for entry in std::fs::read_dir(root).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((id, zip)) = session_id(&name) else { continue };
            let path = entry.path();
            match (zip, sources.get(&id)) {
                (false, _) if path.is_dir() => {
                    sources.insert(id, Source::Dir(path));
                }
                (true, None) => {
                    sources.insert(id, Source::Zip(path));
                }
                _ => {}
            }
        }
        let mut problems = Vec::new();
        let mut participants: BTreeMap<u32, Participant> = BTreeMap::new();
        let mut any_split = false;
        for (split, file) in SPLIT_FILES {
            let path = root.join(file);
            if !path.exists() {
                continue;
            }
            any_split = true;
            // The unlabelled test file only adds what the full one lacks.
            for p in read_split(&path, split, &mut problems) {
                match participants.get(&p.id) {
                    Some(first) if first.split != p.split => problems.push(Problem {
                        session: Some(p.id),
                        file: file.to_owned(),
                        line: 0,
                        message: format!("also listed in the {} split; kept there only", first.split),
                    }),
                    Some(_) => {}
                    None => {
                        participants.insert(p.id, p);
                    }
                }
            }
        }
        if sources.is_empty() && !any_split {
            return Err(CorpusError::Empty { path: root.to_owned() });
        }
        for id in participants.keys() {
            if !sources.contains_key(id) {
                problems.push(Problem {
                    session: Some(*id),
                    file: format!("{id}_P"),
                    line: 0,
                    message: "listed in a split file but not on disk".into(),
                });
            }
        }
        for id in sources.keys() {
            if !participants.contains_key(id) {
                problems.push(Problem {
                    session: Some(*id),
                    file: format!("{id}_P"),
                    line: 0,
                    message: "on disk but in no split file".into(),
                });
            }
        }
        let synthetic = root.join(super::synth::MARKER).exists();
        Ok(Corpus { root: root.to_owned(), participants, sources, problems, synthetic })
    }

    /// Participants of the split files, by id.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    pub fn participant(&self, id: u32) -> Option<&Participant> {
        self.participants.get(&id)
    }

    /// Participants of the split files that are on disk.
    pub fn available(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values().filter(|p| self.sources.contains_key(&p.id))
    }

    /// Reads one session. Never fails: what cannot be read is reported in `problems`.
    pub fn load(&self, id: u32) -> Session {
        let mut s = Session { id, ..Session::default() };
        let Some(source) = self.sources.get(&id) else {
            s.problems.push(Problem {
                session: Some(id),
                file: format!("{id}_P"),
                line: 0,
                message: "not on disk".into(),
            });
            return s;
        };
        let mut files = match Files::open(source) {
            Ok(f) => f,
            Err(e) => {
                // A problem is a line of the corpus report, which lists every damaged file.
                let message = chain(&*e);
                s.problems.push(Problem { session: Some(id), file: display(source), line: 0, message });
                return s;
            }
        };
        let mut member = |suffix: &str, required: bool, problems: &mut Vec<Problem>| -> Option<(String, Vec<u8>)> {
            let name = format!("{id}_{suffix}");
            match files.read(&name) {
                Ok(Some(found)) => Some(found),
                Ok(None) => {
                    if required {
                        problems.push(Problem {
                            session: Some(id),
                            file: name,
                            line: 0,
                            message: "missing file".into(),
                        });
                    }
                    None
                }
                Err(e) => {
                    let message = chain(&*e);
                    problems.push(Problem { session: Some(id), file: name, line: 0, message });
                    None
                }
            }
        };
        let mut problems = Vec::new();
        if let Some((origin, bytes)) = member("AUDIO.wav", true, &mut problems) {
            match read_wav_from(&bytes[..], &origin) {
                Ok(a) => s.audio = Some(a),
                Err(e) => problems.push(Problem::from_feature(id, &e)),
            }
        }
        if let Some((origin, bytes)) = member("TRANSCRIPT.csv", true, &mut problems) {
            match String::from_utf8(bytes) {
                Ok(text) => match parse_transcript(&text, &origin) {
                    Ok(t) => s.transcript = Some(t),
                    Err(e) => problems.push(Problem::from_feature(id, &e)),
                },
                Err(e) => problems.push(Problem {
                    session: Some(id),
                    file: origin,
                    line: 0,
                    message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
                }),
            }
        }
        if let Some((origin, bytes)) = member("CLNF_features.txt", true, &mut problems) {
            match read_clnf(&bytes[..], &origin) {
                Ok(t) => s.landmarks = Some(t),
                Err(e) => problems.push(Problem::from_feature(id, &e)),
            }
        }
        for (suffix, slot) in
            [("CLNF_pose.txt", &mut s.pose), ("CLNF_gaze.txt", &mut s.gaze), ("CLNF_AUs.txt", &mut s.aus)]
        {
            if let Some((origin, bytes)) = member(suffix, false, &mut problems) {
                match read_table(&bytes, &origin, id) {
                    Ok(t) => *slot = Some(t),
                    Err(p) => problems.push(p),
                }
            }
        }
        if let Some((_, note)) = KNOWN_ISSUES.iter().find(|(k, _)| *k == id && !self.synthetic) {
            problems.push(Problem {
                session: Some(id),
                file: display(source),
                line: 0,
                message: format!("note: {note}"),
            });
        }
        s.problems = problems;
        s
    }

    /// Reads every session (in parallel) and summarises the corpus. `progress` is called once
    /// per session read.
    pub fn check(&self, progress: impl Fn() + Sync) -> CheckReport {
        let per_session: Vec<(u32, f32, Vec<Problem>)> = self
            .sources
            .keys()
            .copied()
            .collect::<Vec<_>>()
            .par_iter()
            .map(|&id| {
                let s = self.load(id);
                progress();
                (id, s.audio.as_ref().map_or(0.0, |a| a.duration_s()), s.problems)
            })
            .collect();
        let mut problems = self.problems.clone();
        let mut rows: Vec<SplitRow> =
            Split::ALL.iter().map(|&split| SplitRow { split, ..SplitRow::default() }).collect();
        for p in self.participants.values() {
            let row = &mut rows[Split::ALL.iter().position(|s| *s == p.split).unwrap_or(0)];
            row.listed += 1;
            row.depressed += usize::from(p.labels.as_ref().is_some_and(|l| l.depressed));
        }
        for (id, seconds, session_problems) in per_session {
            if let Some(p) = self.participants.get(&id) {
                let row = &mut rows[Split::ALL.iter().position(|s| *s == p.split).unwrap_or(0)];
                row.found += 1;
                row.audio_hours += seconds / 3600.0;
                row.missing_files += session_problems.iter().filter(|p| p.message == "missing file").count();
                row.with_problems += usize::from(session_problems.iter().any(|p| !p.message.starts_with("note:")));
            }
            problems.extend(session_problems);
        }
        CheckReport { rows, problems }
    }
}

fn display(source: &Source) -> String {
    match source {
        Source::Dir(p) | Source::Zip(p) => p.display().to_string(),
    }
}

/// A session file that could not be read, with what it is.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}")]
struct Unreadable<E: std::error::Error + 'static> {
    what: String,
    #[source]
    source: E,
}

/// Access to a session's files, in a folder or a zip archive.
enum Files {
    Dir(PathBuf),
    Zip(PathBuf, zip::ZipArchive<File>),
}

impl Files {
    fn open(source: &Source) -> Result<Files, BoxError> {
        match source {
            Source::Dir(p) => Ok(Files::Dir(p.clone())),
            Source::Zip(p) => {
                let f = File::open(p)?;
                let z = zip::ZipArchive::new(f).map_err(|e| Unreadable { what: "a zip archive".into(), source: e })?;
                Ok(Files::Zip(p.clone(), z))
            }
        }
    }

    /// The file named `name` (anywhere in the archive, or directly in the folder), with a
    /// description of where it came from.
    fn read(&mut self, name: &str) -> Result<Option<(String, Vec<u8>)>, BoxError> {
        match self {
            Files::Dir(dir) => {
                let p = dir.join(name);
                match std::fs::read(&p) {
                    Ok(b) => Ok(Some((p.display().to_string(), b))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
            Files::Zip(path, z) => {
                let Some(index) = (0..z.len()).find(|&i| {
                    z.name_for_index(i).and_then(Result::ok).is_some_and(|n| n.rsplit('/').next() == Some(name))
                }) else {
                    return Ok(None);
                };
                let mut entry = z.by_index(index)?;
                let origin = format!("{}:{}", path.display(), entry.name().unwrap_or_default());
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut bytes).map_err(|e| Unreadable { what: origin.clone(), source: e })?;
                Ok(Some((origin, bytes)))
            }
        }
    }
}

/// Reads a comma-separated numeric table with a header.
fn read_table(bytes: &[u8], origin: &str, id: u32) -> Result<Table, Problem> {
    let problem = |line: usize, message: String| Problem { session: Some(id), file: origin.to_owned(), line, message };
    let text = std::str::from_utf8(bytes).map_err(|e| problem(0, format!("not UTF-8 (byte {})", e.valid_up_to())))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| problem(0, "empty file".into()))?;
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_owned()).collect();
    let mut rows = Vec::new();
    for (i, line) in lines {
        let vals: Vec<&str> = line.split(',').map(str::trim).collect();
        if vals.len() != columns.len() {
            return Err(problem(i + 1, format!("{} columns, header has {}", vals.len(), columns.len())));
        }
        let row: Result<Vec<f32>, _> = vals.iter().map(|v| v.parse::<f32>()).collect();
        rows.push(row.map_err(|_| problem(i + 1, "not a number".into()))?);
    }
    Ok(Table { columns, rows })
}

/// Reads one split file; bad lines become problems and are skipped.
fn read_split(path: &Path, split: Split, problems: &mut Vec<Problem>) -> Vec<Participant> {
    let file = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into_owned());
    let problem = |line: usize, message: String| Problem { session: None, file: file.clone(), line, message };
    let mut reader = match csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_path(path) {
        Ok(r) => r,
        Err(e) => {
            problems.push(problem(0, e.to_string()));
            return Vec::new();
        }
    };
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => {
            problems.push(problem(1, e.to_string()));
            return Vec::new();
        }
    };
    let col = |names: &[&str]| names.iter().find_map(|n| header.iter().position(|h| h == &n.to_ascii_lowercase()));
    let Some(id_col) = col(&["Participant_ID"]) else {
        problems.push(problem(1, "no Participant_ID column".into()));
        return Vec::new();
    };
    let bin_col = col(&["PHQ8_Binary", "PHQ_Binary"]);
    let score_col = col(&["PHQ8_Score", "PHQ_Score"]);
    let gender_col = col(&["Gender"]);
    let item_cols: Option<Vec<usize>> = PHQ8_ITEMS.iter().map(|n| col(&[n])).collect();
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(problem(line, e.to_string()));
                continue;
            }
        };
        if record.len() != header.len() {
            problems.push(problem(line, format!("{} columns, header has {}", record.len(), header.len())));
            continue;
        }
        let num = |c: usize| record.get(c).and_then(|v| v.parse::<f32>().ok());
        let Some(id) = num(id_col).filter(|v| *v >= 0.0 && v.fract() == 0.0).map(|v| v as u32) else {
            problems.push(problem(line, format!("bad participant id {:?}", record.get(id_col).unwrap_or(""))));
            continue;
        };
        let labels = match (bin_col, score_col) {
            (Some(b), Some(sc)) => {
                let (Some(bin), Some(score)) = (num(b), num(sc)) else {
                    problems.push(problem(line, "PHQ-8 binary/score is not a number".into()));
                    continue;
                };
                if !(0.0..=24.0).contains(&score) || (bin != 0.0 && bin != 1.0) {
                    problems.push(problem(line, format!("PHQ-8 out of range (binary {bin}, score {score})")));
                    continue;
                }
                let items = match &item_cols {
                    Some(cols) => {
                        let vals: Option<Vec<u8>> =
                            cols.iter().map(|&c| num(c).filter(|v| (0.0..=3.0).contains(v)).map(|v| v as u8)).collect();
                        match vals {
                            Some(v) => {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(&v);
                                Some(a)
                            }
                            None => {
                                problems.push(problem(line, "a PHQ-8 item is missing or out of range".into()));
                                None
                            }
                        }
                    }
                    None => None,
                };
                Some(Labels {
                    depressed: bin == 1.0,
                    phq8: score as u8,
                    gender: gender_col.and_then(num).map_or(0, |g| g as u8),
                    items,
                })
            }
            _ => None,
        };
        out.push(Participant { id, split, labels });
    }
    out
}

/// Per-split summary of [`Corpus::check`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SplitRow {
    pub split: Split,
    pub listed: usize,
    pub found: usize,
    pub depressed: usize,
    pub missing_files: usize,
    pub with_problems: usize,
    pub audio_hours: f32,
}

#[derive(Debug, Clone)]
pub struct CheckReport {
    pub rows: Vec<SplitRow>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<6} {:>7} {:>7} {:>10} {:>14} {:>14} {:>12}",
            "split", "listed", "found", "depressed", "missing files", "with problems", "audio hours"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<6} {:>7} {:>7} {:>10} {:>14} {:>14} {:>12.2}",
                r.split.to_string(),
                r.listed,
                r.found,
                r.depressed,
                r.missing_files,
                r.with_problems,
                r.audio_hours
            )?;
        }
        if self.problems.is_empty() {
            writeln!(f, "\nno problems")?;
        } else {
            writeln!(f, "\n{} problem(s):", self.problems.len())?;
            for p in &self.problems {
                writeln!(f, "  {p}")?;
            }
        }
        Ok(())
    }
}
