//! Round-trip and robustness tests of the wire format.

use heapless::{String, Vec};
use proptest::prelude::*;
use protocol::*;

fn hstring<const N: usize>(max_chars: usize) -> impl Strategy<Value = String<N>> {
    proptest::collection::vec(any::<char>(), 0..=max_chars).prop_map(|cs| {
        let s: std::string::String = cs.into_iter().collect();
        truncated::<N>(&s)
    })
}

fn short() -> impl Strategy<Value = ShortStr> {
    hstring::<32>(40)
}

fn bytes<const N: usize>(max: usize) -> impl Strategy<Value = Vec<u8, N>> {
    proptest::collection::vec(any::<u8>(), 0..=max.min(N))
        .prop_map(|v| Vec::from_slice(&v).expect("length bounded by strategy"))
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        any::<u16>().prop_map(|supported| ErrorCode::UnsupportedVersion { supported }),
        Just(ErrorCode::HelloFirst),
        Just(ErrorCode::UnknownSession),
        Just(ErrorCode::SessionActive),
        Just(ErrorCode::SessionNotCapturing),
        Just(ErrorCode::TranscriptOutOfOrder),
        Just(ErrorCode::BadInput),
        Just(ErrorCode::FeatureFailure),
        Just(ErrorCode::ModelFailure),
        Just(ErrorCode::Storage),
        any::<u32>().prop_map(|expected| ErrorCode::UploadOutOfOrder { expected }),
        Just(ErrorCode::UploadChecksum),
        Just(ErrorCode::NotImplemented),
        Just(ErrorCode::Internal),
        Just(ErrorCode::SessionAborted),
        any::<u32>().prop_map(|limit| ErrorCode::TranscriptTooLarge { limit }),
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::Unauthorized),
        Just(ErrorCode::PairingFailed),
        Just(ErrorCode::BadSignature),
        any::<u64>().prop_map(|confirmed| ErrorCode::Downgrade { confirmed }),
        Just(ErrorCode::BundleRejected),
        any::<u32>().prop_map(|limit| ErrorCode::UploadTooLarge { limit }),
        Just(ErrorCode::NoUpload),
    ]
}

fn slot() -> impl Strategy<Value = ModelSlot> {
    (
        any::<u8>(),
        prop_oneof![
            Just(SlotState::Empty),
            Just(SlotState::Active),
            Just(SlotState::Trial),
            Just(SlotState::Staged),
            Just(SlotState::Confirmed),
            Just(SlotState::Inactive)
        ],
        short(),
        any::<u64>(),
    )
        .prop_map(|(slot, state, model_version, version)| ModelSlot { slot, state, model_version, version })
}

fn record() -> impl Strategy<Value = ResultRecord> {
    (
        (any::<u64>(), any::<u32>(), short(), any::<u64>(), any::<u64>(), any::<u32>()),
        (any::<f32>(), any::<f32>(), any::<[f32; 3]>(), any::<u8>(), short()),
        (any::<[u8; 8]>(), any::<u32>(), proptest::option::of((any::<bool>(), proptest::collection::vec(0u8..=3, 9)))),
    )
        .prop_map(
            |(
                (seq, session, label, started_ms, finished_ms, compute_ms),
                (p_depressed, phq8, gates, m, model_version),
                (schema, flags, phq),
            )| ResultRecord {
                seq,
                session,
                label,
                started_ms,
                finished_ms,
                compute_ms,
                p_depressed,
                phq8,
                gates,
                modalities: Modalities::from_bits_retain(m),
                model_version,
                feature_schema: SchemaHash(schema),
                flags: ResultFlags::from_bits_retain(flags),
                questionnaire: phq.map(|(nine, answers)| {
                    let instrument = if nine { Instrument::Phq9 } else { Instrument::Phq8 };
                    Questionnaire::new(instrument, &answers[..instrument.items()]).expect("valid answers")
                }),
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (any::<u16>(), short()).prop_map(|(protocol_version, host)| Request::Hello(Hello { protocol_version, host })),
        any::<u32>().prop_map(Request::Ping),
        (any::<u8>(), short(), any::<u64>()).prop_map(|(m, label, host_time_ms)| {
            Request::SessionStart(SessionStart { modalities: Modalities::from_bits_retain(m), label, host_time_ms })
        }),
        (
            (any::<u32>(), any::<u32>(), any::<u16>(), any::<bool>()),
            (any::<u32>(), any::<u32>(), any::<bool>(), hstring::<MAX_TEXT>(200))
        )
            .prop_map(|((session, utterance, part, last_part), (start_ms, end_ms, p, text))| {
                Request::TranscriptChunk(TranscriptChunk {
                    session,
                    utterance,
                    part,
                    last_part,
                    start_ms,
                    end_ms,
                    speaker: if p { Speaker::Participant } else { Speaker::Interviewer },
                    text,
                })
            }),
        any::<u32>().prop_map(Request::SessionStop),
        any::<u32>().prop_map(Request::SessionStatus),
        (any::<u64>(), any::<u8>()).prop_map(|(after, max)| Request::Sync(SyncCursor { after, max })),
        any::<u64>().prop_map(|upto| Request::SyncAck(Ack { upto })),
        (bytes::<MAX_MANIFEST>(MAX_MANIFEST), bytes::<64>(64), any::<u32>(), any::<[u8; 32]>(), any::<bool>())
            .prop_map(|(manifest, signature, total_size, sha256, allow_downgrade)| {
                Request::UploadBegin(UploadBegin { manifest, signature, total_size, sha256, allow_downgrade })
            }),
        (any::<u32>(), bytes::<MAX_CHUNK>(MAX_CHUNK))
            .prop_map(|(offset, data)| Request::UploadChunk(UploadChunk { offset, data })),
        Just(Request::UploadStatus),
        Just(Request::UploadCommit),
        Just(Request::UploadConfirm),
        Just(Request::UploadRollback),
        any::<u32>().prop_map(Request::SessionAbort),
        (any::<[u8; 32]>(), bytes::<64>(64))
            .prop_map(|(host_key, signature)| Request::Auth(Auth { host_key, signature })),
        (any::<[u8; 32]>(), short()).prop_map(|(host_key, name)| Request::PairBegin(PairBegin { host_key, name })),
        (any::<u32>(), bytes::<64>(64))
            .prop_map(|(code, signature)| Request::PairConfirm(PairConfirm { code, signature })),
        Just(Request::Unpair),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (
            (any::<u16>(), short(), short(), short()),
            (proptest::collection::vec(slot(), 0..=2), short(), any::<[u8; 8]>(), any::<u32>(), any::<u64>()),
            (any::<[u8; 32]>(), any::<bool>())
        )
            .prop_map(
                |(
                    (protocol_version, device_id, board, firmware_version),
                    (slots, active_model_version, schema, caps, last_result_seq),
                    (challenge, authorized),
                )| {
                    Response::DeviceInfo(DeviceInfo {
                        protocol_version,
                        device_id,
                        board,
                        firmware_version,
                        slots: Vec::from_slice(&slots).expect("at most 2"),
                        active_model_version,
                        feature_schema: SchemaHash(schema),
                        capabilities: Capabilities::from_bits_retain(caps),
                        last_result_seq,
                        active_session: None,
                        challenge,
                        authorized,
                    })
                }
            ),
        any::<u32>().prop_map(Response::Pong),
        (
            any::<u32>(),
            prop_oneof![
                Just(SessionState::Capturing),
                Just(SessionState::Processing),
                any::<u64>().prop_map(|seq| SessionState::Done { seq }),
                error_code().prop_map(SessionState::Failed),
            ],
            any::<u32>()
        )
            .prop_map(|(session, state, captured_ms)| Response::Session(SessionStatus {
                session,
                state,
                captured_ms
            })),
        (any::<u32>(), any::<u32>()).prop_map(|(session, utterances)| {
            Response::TranscriptAccepted(TranscriptAccepted { session, utterances })
        }),
        (proptest::collection::vec(record(), 0..=MAX_RECORDS_PER_BATCH), any::<u64>()).prop_map(
            |(records, last_seq)| Response::Records(RecordBatch {
                records: Vec::from_slice(&records).expect("bounded"),
                last_seq
            })
        ),
        any::<u64>().prop_map(|upto| Response::Acked(Ack { upto })),
        (any::<u32>(), any::<u32>(), slot()).prop_map(|(next_offset, total_size, slot)| {
            Response::Upload(UploadStatus { next_offset, total_size, slot })
        }),
        (any::<bool>(), any::<u16>(), any::<u8>()).prop_map(|(button, expires_s, attempts)| {
            let method = if button { PairMethod::Button } else { PairMethod::Code };
            Response::Pairing(PairChallenge { method, expires_s, attempts })
        }),
        any::<u8>().prop_map(|hosts| Response::Paired(Pairings { hosts })),
        (error_code(), hstring::<96>(120)).prop_map(|(code, detail)| Response::Error(Error { code, detail })),
    ]
}

/// Decodes every frame in `wire`, returning the good messages and the number of bad frames.
fn decode_all<T: serde::de::DeserializeOwned>(wire: &[u8]) -> (std::vec::Vec<T>, usize) {
    let mut dec = FrameDecoder::new();
    let (mut good, mut bad) = (std::vec::Vec::new(), 0);
    let mut rest = wire;
    while !rest.is_empty() {
        let fed = dec.feed::<T>(rest);
        match fed.frame {
            Some(Ok(m)) => good.push(m),
            Some(Err(_)) => bad += 1,
            None => {}
        }
        rest = fed.rest;
    }
    (good, bad)
}

fn encode<T: serde::Serialize>(msg: &T) -> std::vec::Vec<u8> {
    let mut buf = [0u8; MAX_FRAME];
    let n = encode_frame(msg, &mut buf).expect("every message fits in a frame");
    buf[..n].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_round_trips(id in any::<u32>(), req in request()) {
        let frame = HostFrame { id, req };
        let wire = encode(&frame);
        prop_assert!(wire.len() <= MAX_FRAME);
        prop_assert_eq!(wire.iter().filter(|b| **b == 0).count(), 2, "zeros only as delimiters");
        let (got, bad) = decode_all::<HostFrame>(&wire);
        prop_assert_eq!(bad, 0);
        prop_assert_eq!(got, vec![frame]);
    }

    #[test]
    fn every_response_round_trips(id in any::<u32>(), resp in response()) {
        // NaN != NaN: compare the re-encoded bytes, which is what the wire cares about.
        let frame = DeviceFrame { id, resp };
        let wire = encode(&frame);
        let (got, bad) = decode_all::<DeviceFrame>(&wire);
        prop_assert_eq!(bad, 0);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(encode(&got[0]), wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(junk in proptest::collection::vec(any::<u8>(), 0..12_000)) {
        let (_msgs, _bad) = decode_all::<HostFrame>(&junk);
        let (_msgs, _bad) = decode_all::<DeviceFrame>(&junk);
    }

    #[test]
    fn garbage_between_frames_loses_no_good_frame(
        reqs in proptest::collection::vec(request(), 1..6),
        junk in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 6),
    ) {
        let frames: std::vec::Vec<HostFrame> =
            reqs.into_iter().enumerate().map(|(i, req)| HostFrame { id: i as u32, req }).collect();
        let mut wire = std::vec::Vec::new();
        for (f, j) in frames.iter().zip(&junk) {
            wire.extend_from_slice(j);
            wire.extend(encode(f));
        }
        let (got, _bad) = decode_all::<HostFrame>(&wire);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn a_flipped_bit_is_detected(req in request(), bit in any::<prop::sample::Index>()) {
        let mut wire = encode(&HostFrame { id: 7, req: req.clone() });
        // Flip one bit inside the body (not the delimiters).
        let body = wire.len() - 2;
        let pos = 1 + bit.index(body * 8) / 8;
        wire[pos] ^= 1 << (bit.index(body * 8) % 8);
        let (got, _bad) = decode_all::<HostFrame>(&wire);
        // CRC-32 detects every single-bit error; the frame must not decode to anything.
        prop_assert!(got.is_empty(), "corrupted frame decoded as {:?}", got);
    }
}

/// The request of every variant at its largest: every field at its maximum, every container
/// full, every string of four-byte characters.
fn largest_requests() -> std::vec::Vec<Request> {
    let s = truncated::<32>(&"😀".repeat(8));
    vec![
        Request::Hello(Hello { protocol_version: u16::MAX, host: s.clone() }),
        Request::Ping(u32::MAX),
        Request::SessionStart(SessionStart { modalities: Modalities::all(), label: s.clone(), host_time_ms: u64::MAX }),
        Request::TranscriptChunk(TranscriptChunk {
            session: u32::MAX,
            utterance: u32::MAX,
            part: u16::MAX,
            last_part: true,
            start_ms: u32::MAX,
            end_ms: u32::MAX,
            speaker: Speaker::Interviewer,
            // Four-byte characters fill the capacity exactly.
            text: truncated(&"😀".repeat(MAX_TEXT / 4)),
        }),
        Request::SessionStop(u32::MAX),
        Request::SessionStatus(u32::MAX),
        Request::Sync(SyncCursor { after: u64::MAX, max: u8::MAX }),
        Request::SyncAck(Ack { upto: u64::MAX }),
        Request::UploadBegin(UploadBegin {
            manifest: Vec::from_slice(&[0xFF; MAX_MANIFEST]).expect("MAX_MANIFEST"),
            signature: Vec::from_slice(&[0xFF; 64]).expect("64"),
            total_size: u32::MAX,
            sha256: [0xFF; 32],
            allow_downgrade: true,
        }),
        Request::UploadChunk(UploadChunk {
            offset: u32::MAX,
            data: Vec::from_slice(&[0xAB; MAX_CHUNK]).expect("MAX_CHUNK"),
        }),
        Request::UploadStatus,
        Request::UploadCommit,
        Request::UploadConfirm,
        Request::UploadRollback,
        Request::SessionAbort(u32::MAX),
        Request::Auth(Auth { host_key: [0xFF; 32], signature: Vec::from_slice(&[0xFF; 64]).expect("64") }),
        Request::PairBegin(PairBegin { host_key: [0xFF; 32], name: s }),
        Request::PairConfirm(PairConfirm { code: u32::MAX, signature: Vec::from_slice(&[0xFF; 64]).expect("64") }),
        Request::Unpair,
    ]
}

/// The response of every variant at its largest.
fn largest_responses() -> std::vec::Vec<Response> {
    let s = truncated::<32>(&"😀".repeat(8));
    let slot = ModelSlot { slot: u8::MAX, state: SlotState::Staged, model_version: s.clone(), version: u64::MAX };
    let rec = ResultRecord {
        seq: u64::MAX,
        session: u32::MAX,
        label: s.clone(),
        started_ms: u64::MAX,
        finished_ms: u64::MAX,
        compute_ms: u32::MAX,
        p_depressed: 1.0,
        phq8: 24.0,
        gates: [1.0; 3],
        modalities: Modalities::all(),
        model_version: s.clone(),
        feature_schema: SchemaHash([0xFF; 8]),
        flags: ResultFlags::from_bits_retain(u32::MAX),
        questionnaire: Some(Questionnaire::new(Instrument::Phq9, &[3; 9]).expect("valid")),
    };
    vec![
        Response::DeviceInfo(DeviceInfo {
            protocol_version: u16::MAX,
            device_id: s.clone(),
            board: s.clone(),
            firmware_version: s.clone(),
            slots: Vec::from_slice(&[slot.clone(), slot.clone()]).expect("2 slots"),
            active_model_version: s,
            feature_schema: SchemaHash([0xFF; 8]),
            capabilities: Capabilities::from_bits_retain(u32::MAX),
            last_result_seq: u64::MAX,
            active_session: Some(SessionStatus {
                session: u32::MAX,
                state: SessionState::Failed(ErrorCode::UploadOutOfOrder { expected: u32::MAX }),
                captured_ms: u32::MAX,
            }),
            challenge: [0xFF; 32],
            authorized: true,
        }),
        Response::Pong(u32::MAX),
        Response::Session(SessionStatus {
            session: u32::MAX,
            state: SessionState::Failed(ErrorCode::UploadOutOfOrder { expected: u32::MAX }),
            captured_ms: u32::MAX,
        }),
        Response::TranscriptAccepted(TranscriptAccepted { session: u32::MAX, utterances: u32::MAX }),
        Response::Records(RecordBatch {
            records: Vec::from_slice(&[
                rec.clone(),
                rec.clone(),
                rec.clone(),
                rec.clone(),
                rec.clone(),
                rec.clone(),
                rec.clone(),
                rec,
            ])
            .expect("8 records"),
            last_seq: u64::MAX,
        }),
        Response::Acked(Ack { upto: u64::MAX }),
        Response::Upload(UploadStatus { next_offset: u32::MAX, total_size: u32::MAX, slot }),
        Response::Pairing(PairChallenge { method: PairMethod::Button, expires_s: u16::MAX, attempts: u8::MAX }),
        Response::Paired(Pairings { hosts: u8::MAX }),
        Response::Error(Error {
            code: ErrorCode::UnsupportedVersion { supported: u16::MAX },
            detail: truncated(&"😀".repeat(24)),
        }),
    ]
}

#[test]
fn largest_messages_fit() {
    // Each variant exactly once: the matches name every variant, so a new one fails to compile
    // until it is listed here.
    let requests = largest_requests();
    let mut seen: std::vec::Vec<usize> = requests
        .iter()
        .map(|r| match r {
            Request::Hello(_) => 0,
            Request::Ping(_) => 1,
            Request::SessionStart(_) => 2,
            Request::TranscriptChunk(_) => 3,
            Request::SessionStop(_) => 4,
            Request::SessionStatus(_) => 5,
            Request::Sync(_) => 6,
            Request::SyncAck(_) => 7,
            Request::UploadBegin(_) => 8,
            Request::UploadChunk(_) => 9,
            Request::UploadStatus => 10,
            Request::UploadCommit => 11,
            Request::UploadConfirm => 12,
            Request::UploadRollback => 13,
            Request::SessionAbort(_) => 14,
            Request::Auth(_) => 15,
            Request::PairBegin(_) => 16,
            Request::PairConfirm(_) => 17,
            Request::Unpair => 18,
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..19).collect::<std::vec::Vec<_>>());
    let responses = largest_responses();
    let mut seen: std::vec::Vec<usize> = responses
        .iter()
        .map(|r| match r {
            Response::DeviceInfo(_) => 0,
            Response::Pong(_) => 1,
            Response::Session(_) => 2,
            Response::TranscriptAccepted(_) => 3,
            Response::Records(_) => 4,
            Response::Acked(_) => 5,
            Response::Upload(_) => 6,
            Response::Error(_) => 7,
            Response::Pairing(_) => 8,
            Response::Paired(_) => 9,
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<std::vec::Vec<_>>());
    for req in requests {
        let frame = HostFrame { id: u32::MAX, req };
        let wire = encode(&frame);
        assert_eq!(decode_all::<HostFrame>(&wire).0, vec![frame]);
    }
    for resp in responses {
        let frame = DeviceFrame { id: u32::MAX, resp };
        let wire = encode(&frame);
        assert_eq!(decode_all::<DeviceFrame>(&wire).0, vec![frame]);
    }
}

#[test]
fn each_endpoint_pairs_its_request_with_its_response() {
    use protocol::endpoints as e;
    assert_eq!(e::SessionStop::request(9), Request::SessionStop(9));
    assert_eq!(Request::SessionStop(9).name(), "session stop");
    let status = SessionStatus { session: 9, state: SessionState::Processing, captured_ms: 1 };
    assert_eq!(e::SessionStop::response(Response::Session(status)), Ok(status));
    // Another endpoint's answer, or an error, is handed back unchanged.
    assert_eq!(e::SessionStop::response(Response::Pong(1)), Err(Response::Pong(1)));
    let refused = Response::Error(Error::new(ErrorCode::UnknownSession, "no"));
    assert_eq!(e::Sync::response(refused.clone()), Err(refused));
    assert_eq!(e::UploadCommit::request(()), Request::UploadCommit);
    assert_eq!(e::Ping::response(Response::Pong(4)), Ok(4));
}

#[test]
fn flags_print_their_names() {
    assert_eq!((ResultFlags::NO_FACE | ResultFlags::SIMULATED).to_string(), "no usable video, simulated inputs");
    assert_eq!(ResultFlags::empty().to_string(), "");
    assert_eq!((Capabilities::AUDIO | Capabilities::KIOSK).to_string(), "audio, kiosk");
    assert_eq!(Modalities::ALL.to_string(), "audio, video, text");
    assert_eq!(Capabilities::from(Modalities::VIDEO | Modalities::TEXT), Capabilities::VIDEO | Capabilities::TEXT);
    // Every flag has a name.
    assert_eq!(ResultFlags::NAMES.iter().fold(ResultFlags::empty(), |a, (f, _)| a | *f), ResultFlags::all());
    assert_eq!(Capabilities::NAMES.iter().fold(Capabilities::empty(), |a, (f, _)| a | *f), Capabilities::all());
}

#[test]
fn truncated_frame_is_reported_and_the_next_frame_decodes() {
    let a = encode(&HostFrame { id: 1, req: Request::Ping(11) });
    let b = encode(&HostFrame { id: 2, req: Request::Ping(22) });
    let mut wire = a[..a.len() / 2].to_vec(); // cut off mid-frame
    wire.extend(&b);
    let (got, bad) = decode_all::<HostFrame>(&wire);
    assert_eq!(bad, 1);
    assert_eq!(got, vec![HostFrame { id: 2, req: Request::Ping(22) }]);
}

#[test]
fn overlong_junk_is_an_overflow_not_a_panic() {
    let mut wire = vec![0x55u8; MAX_FRAME * 3];
    wire.push(0);
    wire.extend(encode(&HostFrame { id: 9, req: Request::Ping(1) }));
    let mut dec = FrameDecoder::new();
    let fed = dec.feed::<HostFrame>(&wire);
    assert_eq!(fed.frame.expect("a frame ends at the delimiter").unwrap_err(), FrameError::Overflow);
    let fed = dec.feed::<HostFrame>(fed.rest);
    assert_eq!(fed.frame.expect("next frame").expect("decodes"), HostFrame { id: 9, req: Request::Ping(1) });
}

#[test]
fn wrong_message_type_is_a_decode_error() {
    // A host frame fed to the device-frame decoder: CRC fine, body wrong.
    let wire = encode(&HostFrame { id: 3, req: Request::UploadCommit });
    let mut dec = FrameDecoder::new();
    let fed = dec.feed::<DeviceFrame>(&wire);
    assert!(matches!(fed.frame, Some(Err(FrameError::Decode))), "{:?}", fed.frame);
}

#[test]
fn truncation_keeps_char_boundaries() {
    let s: String<5> = truncated("aé😀z");
    assert_eq!(s.as_str(), "aé");
}

#[test]
fn escaped_text_cannot_forge_a_log_line_or_drive_a_terminal() {
    let forged = "host\n2026-12-01T00:00:00Z  INFO device: session started\u{1b}[2J\u{202e}x";
    let shown = Escaped(forged).to_string();
    assert!(!shown.chars().any(char::is_control), "{shown}");
    assert!(shown.contains("\\u{a}") && shown.contains("\\u{1b}") && shown.contains("\\u{202e}"), "{shown}");
    assert_eq!(Escaped("Zoë 12 – ok").to_string(), "Zoë 12 – ok");
}

/// The hello exchange keeps its bytes across protocol versions, so a host and a device of
/// different versions still tell each other so: a `Hello` is variant 0 with the version first,
/// an `Error` answer is variant 7 with `UnsupportedVersion` its code 0. These are the bytes a
/// version-2 host sends and reads.
#[test]
fn the_version_exchange_reads_the_same_in_every_version() {
    let mut buf = [0u8; 64];
    let hello = HostFrame { id: 5, req: Request::Hello(Hello { protocol_version: 2, host: truncated("old") }) };
    let bytes = postcard::to_slice(&hello, &mut buf).expect("encodes");
    assert_eq!(bytes, &[5, 0, 2, 3, b'o', b'l', b'd']);
    let refusal = DeviceFrame {
        id: 5,
        resp: Response::Error(Error::new(ErrorCode::UnsupportedVersion { supported: PROTOCOL_VERSION }, "x")),
    };
    let bytes = postcard::to_slice(&refusal, &mut buf).expect("encodes");
    assert_eq!(bytes, &[5, 7, 0, PROTOCOL_VERSION as u8, 1, b'x']);
}

#[test]
fn phq_scores_and_bands_follow_the_publications_item_by_item() {
    // Each item adds its answer: raise one item at a time from all-zero.
    for instrument in [Instrument::Phq8, Instrument::Phq9] {
        let n = instrument.items();
        for item in 0..n {
            for value in 0..=3u8 {
                let mut answers = vec![0u8; n];
                answers[item] = value;
                let q = Questionnaire::new(instrument, &answers).expect("valid");
                assert_eq!(q.score(), value, "{} item {}", instrument.name(), item + 1);
                assert_eq!(q.needs_safety_assessment(), instrument == Instrument::Phq9 && item == 8 && value > 0);
            }
        }
        let all = Questionnaire::new(instrument, &vec![3; n]).expect("valid");
        assert_eq!(all.score(), instrument.max_score());
        assert_eq!(all.severity(), Severity::Severe);
    }
    // The bands' edges: 0–4 minimal, 5–9 mild, 10–14 moderate, 15–19 moderately severe, 20+ severe.
    let edges = [
        (0, Severity::Minimal),
        (4, Severity::Minimal),
        (5, Severity::Mild),
        (9, Severity::Mild),
        (10, Severity::Moderate),
        (14, Severity::Moderate),
        (15, Severity::ModeratelySevere),
        (19, Severity::ModeratelySevere),
        (20, Severity::Severe),
        (27, Severity::Severe),
    ];
    for (score, band) in edges {
        assert_eq!(Severity::of(score), band, "score {score}");
    }
    assert_eq!(PHQ_CUTOFF, 10);
    // Item 9 at 1 with every other item 0: minimal total, still a safety path.
    let q = Questionnaire::new(Instrument::Phq9, &[0, 0, 0, 0, 0, 0, 0, 0, 1]).expect("valid");
    assert!(q.needs_safety_assessment() && q.severity() == Severity::Minimal);
}

#[test]
fn answers_that_are_not_a_questionnaire_are_refused() {
    assert_eq!(Questionnaire::new(Instrument::Phq8, &[0; 9]), Err(QuestionnaireError::Count { expected: 8, got: 9 }));
    assert_eq!(
        Questionnaire::new(Instrument::Phq9, &[0, 0, 4, 0, 0, 0, 0, 0, 0]),
        Err(QuestionnaireError::Answer { item: 3, value: 4 })
    );
}

#[test]
fn a_version_3_record_reads_as_one_without_a_questionnaire() {
    let mut full = largest_responses()
        .into_iter()
        .find_map(|r| match r {
            Response::Records(b) => b.records.into_iter().next(),
            _ => None,
        })
        .expect("a record");
    full.seq = 7;
    full.phq8 = 9.0;
    full.flags = ResultFlags::SIMULATED;
    let v3 = full.as_v3();
    let mut buf = [0u8; 256];
    let bytes = postcard::to_slice(&v3, &mut buf).expect("encodes");
    assert!(postcard::from_bytes::<ResultRecord>(bytes).is_err(), "the v4 layout differs");
    let r = ResultRecord::from(postcard::from_bytes::<ResultRecordV3>(bytes).expect("decodes"));
    assert_eq!((r.seq, r.phq8, r.flags, r.questionnaire), (7, 9.0, ResultFlags::SIMULATED, None));
}

/// Version 5 widened [`ResultFlags`] from 16 to 32 bits. postcard writes both as the same
/// varint, so a record of version 4 (in a device's log, or hashed in a host's database) reads
/// and hashes exactly as before.
#[test]
fn flags_of_version_4_encode_as_they_did() {
    for bits in [0u16, 1, 0x7f, 0x80, 0x3fff, 0x4000, 0x8421, u16::MAX] {
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        let old = postcard::to_slice(&bits, &mut a).expect("encodes");
        let new = postcard::to_slice(&ResultFlags::from_bits_retain(u32::from(bits)), &mut b).expect("encodes");
        assert_eq!(old, new, "{bits:#x}");
        assert_eq!(postcard::from_bytes::<ResultFlags>(old).expect("decodes").bits(), u32::from(bits));
    }
}
