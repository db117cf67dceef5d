//! The session pipeline without the wire: simulated capture → `SessionPipeline` → result.

use std::path::{Path, PathBuf};

use device::SessionPipeline;
use device::capture::{Capture, CaptureError, SimulatedCapture};
use device::pipeline::{Job, Pipeline};
use features::text::{Speaker, Utterance};
use protocol::{Modalities, ResultFlags, ResultRecord, truncated};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/sample/session-001")
}

fn words(text: &str) -> Vec<Utterance> {
    vec![Utterance { start_ms: 1_000, end_ms: 4_000, speaker: Speaker::Participant, text: text.into() }]
}

/// One session over the files in `sim`, capturing `want`, through the placeholder model with
/// the face front-end when `face` is set.
fn run(sim: &Path, want: Modalities, face: bool, text: &str) -> ResultRecord {
    run_failing(sim, want, Modalities::empty(), face, text)
}

/// [`run`], with `failed` the modalities whose device did not open.
fn run_failing(sim: &Path, want: Modalities, failed: Modalities, face: bool, text: &str) -> ResultRecord {
    let mut capture = SimulatedCapture::new(sim).expect("simulation folder");
    capture.start(want).expect("capture starts");
    let mut captured = capture.stop().expect("capture stops");
    captured.failed = failed;
    let face =
        face.then(|| device::load_face(None, None).expect("loads").expect("run scripts/install_landmark_model.sh"));
    let mut pipeline = SessionPipeline::new(Box::new(runtime::PlaceholderModel::default()), true).with_face(face);
    let job = Job {
        session: 3,
        label: truncated("p"),
        started_ms: 1_000,
        captured_ms: 10,
        captured,
        utterances: words(text),
        extra: Default::default(),
        keep: None,
    };
    pipeline.process(job).expect("a result")
}

/// `frames` copied into a fresh simulation folder (no audio).
fn sim_with_frames(dir: &Path, frames: &Path) -> PathBuf {
    let sim = dir.join("sim");
    let out = sim.join("frames");
    std::fs::create_dir_all(&out).expect("mkdir");
    for e in std::fs::read_dir(frames).expect("frames") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, out.join(p.file_name().expect("name"))).expect("copy");
    }
    if frames.with_file_name("video.toml").exists() {
        std::fs::copy(frames.with_file_name("video.toml"), sim.join("video.toml")).expect("copy");
    }
    sim
}

#[test]
fn the_sample_interview_gives_a_result_from_all_three_modalities() {
    let r = run(&sample(), Modalities::ALL, true, "I have been feeling fine lately and I sleep well most nights");
    assert_eq!(r.modalities, Modalities::ALL, "{}", r.flags);
    assert!(r.flags.contains(ResultFlags::SIMULATED | ResultFlags::PLACEHOLDER_MODEL), "{}", r.flags);
    assert!(!r.flags.intersects(ResultFlags::NO_FACE | ResultFlags::SEVERAL_FACES | ResultFlags::DAMAGED_VIDEO));
    assert!((r.gates.iter().sum::<f32>() - 1.0).abs() < 1e-5 && r.gates.iter().all(|&g| g > 0.0), "{:?}", r.gates);
    assert_eq!((r.seq, r.session, r.label.as_str(), r.model_version.as_str()), (0, 3, "p", "placeholder-0.1"));
    assert_eq!(r.feature_schema, features::schema::schema_hash());
    assert!(r.finished_ms >= r.started_ms + 59_000, "the sample lasts 60 s: {}", r.finished_ms);
    assert_eq!(r.flags.contains(ResultFlags::SCREEN_POSITIVE), r.p_depressed >= 0.5);
}

#[test]
fn without_a_landmarker_video_is_absent_and_flagged() {
    let r =
        run(&sample(), Modalities::ALL, false, "I have been feeling fine lately, thank you, and work is going well");
    assert_eq!(r.modalities, Modalities::AUDIO | Modalities::TEXT);
    assert!(r.flags.contains(ResultFlags::NO_FACE | ResultFlags::SHORT_TRANSCRIPT), "{}", r.flags);
    assert_eq!(r.gates[1], 0.0);
}

#[test]
fn a_text_only_session_weighs_text_alone() {
    let r =
        run(&sample(), Modalities::TEXT, true, "I am fine thanks, I slept well and I enjoy my work a lot these days");
    assert_eq!(r.modalities, Modalities::TEXT);
    assert_eq!(r.gates, [0.0, 0.0, 1.0]);
}

#[test]
fn several_faces_and_damaged_frames_are_flagged_and_the_rest_measured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    std::fs::write(frames.join("video.toml"), "fps = 5\n").expect("write");
    // Twelve faces of scikit-image's `lfw_subset` in every frame, and one frame that is not a JPEG.
    let grid = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vision/tests/fixtures/faces/lfw_grid.png");
    for i in 0..40 {
        std::fs::copy(&grid, frames.join(format!("{i:03}.png"))).expect("copy");
    }
    std::fs::write(frames.join("012.jpg"), b"\xFF\xD8\xFF\xE0 not a JPEG after all").expect("write");
    let r = run(&sim_with_frames(dir.path(), &frames), Modalities::ALL, true, "I have been feeling fine lately");
    assert!(r.modalities.contains(Modalities::VIDEO), "the good frames are measured: {}", r.modalities);
    assert!(!r.flags.contains(ResultFlags::NO_FACE), "{}", r.flags);
    assert!(r.flags.contains(ResultFlags::SEVERAL_FACES | ResultFlags::DAMAGED_VIDEO), "{}", r.flags);
}

#[test]
fn a_bad_recording_is_a_capture_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("audio.wav"), b"RIFF....WAVEjunk").expect("write");
    let mut capture = SimulatedCapture::new(dir.path()).expect("folder exists");
    let e = capture.start(Modalities::ALL).expect_err("refused");
    assert!(matches!(e, CaptureError::Wav { .. }), "{e:?}");
    let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("audio.wav"), "{cause}");
    // Text alone still starts.
    capture.start(Modalities::TEXT).expect("text-only starts");
    assert!(matches!(SimulatedCapture::new(&dir.path().join("nope")), Err(CaptureError::NoSimulationFolder(_))));
}

#[test]
fn a_model_that_needs_another_text_encoder_is_refused_before_any_session() {
    struct NeedsMiniLm;
    impl runtime::Model for NeedsMiniLm {
        fn version(&self) -> &str {
            "needs-minilm"
        }
        fn feature_schema(&self) -> protocol::SchemaHash {
            features::schema::schema_hash_for(features::text::TextEmbedding::MiniLm)
        }
        fn is_placeholder(&self) -> bool {
            false
        }
        fn predict(&self, _: &features::SessionFeatures) -> Result<runtime::Prediction, runtime::ModelError> {
            Err(runtime::ModelError::NoInput)
        }
    }
    let e = SessionPipeline::new(Box::new(NeedsMiniLm), false).with_text_encoder(None).expect_err("refused");
    assert!(e.to_string().contains("minilm") || e.to_string().contains("MiniLM"), "{e}");
}

/// The sample's frames and an `audio.wav` of `samples` zero samples in a fresh folder.
fn sim_with_silent_wav(dir: &Path, samples: usize, frames: bool) -> PathBuf {
    let sim = if frames { sim_with_frames(dir, &sample().join("frames")) } else { dir.join("sim") };
    std::fs::create_dir_all(&sim).expect("mkdir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(sim.join("audio.wav"), spec).expect("wav");
    for _ in 0..samples {
        w.write_sample(0i16).expect("sample");
    }
    w.finalize().expect("finalize");
    sim
}

const ANSWER: &str = "I grew up near the coast but I moved here for work a few years ago and I sleep badly";

#[test]
fn a_dead_microphone_leaves_audio_out_instead_of_screening_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    for samples in [0, 16_000 * 30] {
        let sim = sim_with_silent_wav(&dir.path().join(samples.to_string()), samples, true);
        let r = run(&sim, Modalities::ALL, true, ANSWER);
        assert_eq!(r.modalities, Modalities::VIDEO | Modalities::TEXT, "{samples} samples: {}", r.flags);
        assert!(r.flags.contains(ResultFlags::TOO_LITTLE_SPEECH), "{}", r.flags);
        assert_eq!(r.gates[0], 0.0);
        assert!(!r.flags.contains(ResultFlags::INSUFFICIENT_DATA));
    }
}

#[test]
fn a_face_seen_for_a_moment_is_not_video() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Three frames of the sample at 30 fps: a tenth of a second of face.
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    std::fs::write(dir.path().join("video.toml"), "fps = 30\n").expect("write");
    for i in 0..3 {
        std::fs::copy(sample().join(format!("frames/{i:06}.jpg")), frames.join(format!("{i:06}.jpg"))).expect("copy");
    }
    let r = run(&sim_with_frames(&dir.path().join("s"), &frames), Modalities::ALL, true, ANSWER);
    assert_eq!(r.modalities, Modalities::TEXT, "{}", r.flags);
    assert!(r.flags.contains(ResultFlags::NO_FACE), "{}", r.flags);
}

#[test]
fn too_little_of_everything_is_insufficient_data_not_a_screen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = sim_with_silent_wav(dir.path(), 0, false);
    let r = run(&sim, Modalities::ALL, true, "fine");
    assert_eq!(r.modalities, Modalities::empty());
    assert!(r.flags.contains(ResultFlags::INSUFFICIENT_DATA | ResultFlags::TOO_LITTLE_SPEECH), "{}", r.flags);
    assert!(!r.flags.contains(ResultFlags::SCREEN_POSITIVE));
    assert_eq!((r.p_depressed, r.phq8, r.gates), (0.0, 0.0, [0.0; 3]));
}

#[test]
fn an_empty_frames_folder_is_no_video_like_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("frames")).expect("mkdir");
    let mut capture = SimulatedCapture::new(dir.path()).expect("folder");
    assert_eq!(capture.available(), Modalities::TEXT);
    capture.start(Modalities::ALL).expect("starts: nothing to capture is not an error");
    let r = run(dir.path(), Modalities::ALL, false, ANSWER);
    assert_eq!(r.modalities, Modalities::TEXT);
}

#[test]
fn a_device_that_failed_is_named_in_the_result() {
    let text = "I have been sleeping badly and I feel tired most days, I do not enjoy much anymore.";
    let r = run_failing(&sample(), Modalities::AUDIO | Modalities::TEXT, Modalities::VIDEO, false, text);
    assert!(r.flags.contains(ResultFlags::CAMERA_LOST | ResultFlags::NO_FACE), "{}", r.flags);
    assert!(!r.modalities.contains(Modalities::VIDEO) && r.modalities.contains(Modalities::AUDIO));
    let r = run_failing(&sample(), Modalities::TEXT, Modalities::AUDIO, false, text);
    assert!(r.flags.contains(ResultFlags::MIC_LOST) && !r.flags.contains(ResultFlags::CAMERA_LOST), "{}", r.flags);
    assert!(!r.modalities.contains(Modalities::AUDIO));
}

/// Research media: kept only when the patient consented and the device keeps media; written
/// into the spool and moved among the kept media once the features exist; an aborted session
/// keeps nothing.
#[test]
fn raw_media_are_kept_only_with_consent_and_the_flag() {
    use device::session::{Origin, StartRequest};
    use protocol::SessionState;
    let dir = tempfile::tempdir().expect("tempdir");
    let (spool, media) = (dir.path().join("spool"), dir.path().join("media"));
    let mut server = device::simulated(&dir.path().join("data"), &sample()).expect("device");
    let sessions = server.sessions();
    let req =
        || StartRequest { modalities: Modalities::ALL, label: truncated("k"), host_time_ms: 0, origin: Origin::Local };
    let session = |sessions: &mut device::Sessions, research: bool| {
        let id = sessions.start_with(req(), research).expect("starts").session;
        sessions.add_turn(id, 0, 30_000).expect("a turn");
        sessions.stop(id).expect("stops");
        assert!(sessions.wait_idle(std::time::Duration::from_secs(120)), "computed");
        (id, sessions.log().find_session(id).expect("a result").flags)
    };
    // Consent without the device keeping media, then the device keeping media without consent.
    let (_, flags) = session(sessions, true);
    assert!(!flags.contains(ResultFlags::MEDIA_KEPT), "{flags}");
    sessions.keep_media(spool.clone(), media.clone());
    let (_, flags) = session(sessions, false);
    assert!(!flags.contains(ResultFlags::MEDIA_KEPT), "{flags}");
    assert!(!media.exists() && !spool.join("session-2").exists());
    // Both: the recording and the frames, readable, and nothing left in the spool.
    let (id, flags) = session(sessions, true);
    assert!(flags.contains(ResultFlags::MEDIA_KEPT), "{flags}");
    let kept = media.join(format!("session-{id}"));
    let audio = features::audio::read_wav(&kept.join("audio.wav")).expect("the kept recording");
    let original = features::audio::read_wav(&sample().join("audio.wav")).expect("sample");
    assert_eq!(audio.samples.len(), original.samples.len());
    let mut frames = vision::video::MjpegFile::open(&kept.join("video.mjpeg"), 30.0).expect("the kept frames");
    let mut n = 0;
    while let Some(f) = vision::video::FrameSource::next_frame(&mut frames) {
        f.expect("a kept frame decodes");
        n += 1;
    }
    let originals = std::fs::read_dir(sample().join("frames"))
        .expect("frames")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "jpg")))
        .count();
    assert_eq!(n, originals);
    assert!(!spool.join(format!("session-{id}")).exists(), "the spool still holds the session");
    // An aborted session keeps nothing.
    let id = sessions.start_with(req(), true).expect("starts").session;
    let status = sessions.abort(id).expect("aborts");
    assert_eq!(status.state, SessionState::Failed(protocol::ErrorCode::SessionAborted));
    assert!(!media.join(format!("session-{id}")).exists() && !spool.join(format!("session-{id}")).exists());
}

#[test]
fn a_session_without_a_pushed_transcript_gets_its_text_from_the_devices_own_transcription() {
    let transcriber = device::load_transcriber(None).expect("run scripts/install_whisper.sh");
    let job = || {
        let mut capture = SimulatedCapture::new(&sample()).expect("simulation folder");
        capture.start(Modalities::AUDIO).expect("capture starts");
        Job {
            session: 4,
            label: truncated("p"),
            started_ms: 1_000,
            captured_ms: 10,
            captured: capture.stop().expect("capture stops"),
            utterances: Vec::new(),
            extra: Default::default(),
            keep: None,
        }
    };
    let mut without = SessionPipeline::new(Box::new(runtime::PlaceholderModel::default()), true);
    let r = without.process(job()).expect("a result");
    assert!(!r.modalities.contains(Modalities::TEXT), "no transcript, no transcriber: no text");
    let mut with =
        SessionPipeline::new(Box::new(runtime::PlaceholderModel::default()), true).with_transcriber(Some(transcriber));
    let r = with.process(job()).expect("a result");
    assert_eq!(r.modalities, Modalities::AUDIO | Modalities::TEXT, "{}", r.flags);
    assert!(r.flags.contains(ResultFlags::MACHINE_TRANSCRIPT | ResultFlags::SPEAKERS_NOT_SEPARATED), "{}", r.flags);
    assert!(!r.flags.contains(ResultFlags::SHORT_TRANSCRIPT), "{}", r.flags);

    // A live kiosk: the recording analysed as it arrived, only the answer windows' samples kept.
    let clip = features::audio::read_wav(&sample().join("audio.wav")).expect("wav");
    let pushed = features::text::read_transcript(&sample().join("transcript.tsv")).expect("transcript");
    let windows: Vec<Utterance> = pushed
        .iter()
        .filter(|u| u.speaker == Speaker::Participant)
        .map(|u| Utterance { text: String::new(), ..u.clone() })
        .collect();
    let kept = features::audio::AnswerAudio {
        windows: windows.iter().map(|u| (u.start_ms, clip.span(u.start_ms, u.end_ms).to_vec())).collect(),
    };
    let live = |answers: Option<features::audio::AnswerAudio>| Job {
        utterances: windows.clone(),
        captured: device::capture::Captured {
            audio: Some(device::capture::Audio::Analysed(features::audio::analyse(&clip).expect("analyses"))),
            video: None,
            duration_ms: (clip.duration_s() * 1000.0) as u32,
            failed: Modalities::empty(),
            answers,
        },
        ..job()
    };
    let r = with.process(live(Some(kept))).expect("a result");
    assert_eq!(r.modalities, Modalities::AUDIO | Modalities::TEXT, "{}", r.flags);
    assert!(r.flags.contains(ResultFlags::MACHINE_TRANSCRIPT), "{}", r.flags);
    assert!(!r.flags.contains(ResultFlags::SPEAKERS_NOT_SEPARATED), "segmented by the answer windows: {}", r.flags);
    let r = with.process(live(None)).expect("a result");
    assert_eq!(r.modalities, Modalities::AUDIO, "no samples kept, nothing to transcribe: {}", r.flags);
}

/// The placeholder model, declared as trained on machine transcripts (its features are as wide).
struct TrainedOnMachineWords(runtime::PlaceholderModel);

impl runtime::Model for TrainedOnMachineWords {
    fn version(&self) -> &str {
        "machine-words"
    }
    fn feature_schema(&self) -> features::SchemaHash {
        features::schema::schema_hash_with(features::text::TextEmbedding::Hashed, features::text::TranscriptSource::Asr)
    }
    fn is_placeholder(&self) -> bool {
        true
    }
    fn predict(&self, f: &features::SessionFeatures) -> Result<runtime::Prediction, runtime::ModelError> {
        self.0.predict(f)
    }
}

#[test]
fn a_model_trained_on_machine_transcripts_needs_a_transcriber_and_gets_machine_words_over_pushed_turns() {
    let model = || Box::new(TrainedOnMachineWords(runtime::PlaceholderModel::default()));
    let err = SessionPipeline::new(model(), true).with_text_encoder(None).expect_err("refused").to_string();
    assert!(err.contains("machine transcripts") && err.contains("--asr"), "{err}");
    let transcriber = device::load_transcriber(None).expect("run scripts/install_whisper.sh");
    let mut pipeline = SessionPipeline::new(model(), true)
        .with_transcriber(Some(transcriber))
        .with_text_encoder(None)
        .expect("a device that transcribes takes it");
    let pushed = features::text::read_transcript(&sample().join("transcript.tsv")).expect("transcript");
    let mut capture = SimulatedCapture::new(&sample()).expect("simulation folder");
    capture.start(Modalities::AUDIO).expect("capture starts");
    let job = Job {
        session: 5,
        label: truncated("p"),
        started_ms: 1_000,
        captured_ms: 10,
        captured: capture.stop().expect("capture stops"),
        utterances: pushed,
        extra: Default::default(),
        keep: None,
    };
    let r = pipeline.process(job).expect("a result");
    // The pushed words are set aside: the text is Whisper's, over the pushed participant turns.
    assert!(r.flags.contains(ResultFlags::MACHINE_TRANSCRIPT), "{}", r.flags);
    assert!(!r.flags.contains(ResultFlags::SPEAKERS_NOT_SEPARATED), "segmented by the pushed turns: {}", r.flags);
    assert!(r.modalities.contains(Modalities::AUDIO | Modalities::TEXT), "{:?}", r.modalities);
}
