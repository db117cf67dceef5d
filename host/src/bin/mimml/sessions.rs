//! Transcripts and screening sessions run from the host.

use std::path::Path;

use host::terminal::run_with_progress;
use host::{out, report, session};
use indicatif::{ProgressBar, ProgressStyle};
use protocol::{Modalities, SessionId};

use crate::cli::{PortArgs, TranscriptArgs};
use crate::context::{Ctx, print_json};

/// `mimml transcript check`: what the device would make of a transcript, without a device.
pub(crate) fn check_transcript(ctx: &Ctx, file: &Path, transcript: &TranscriptArgs) -> anyhow::Result<()> {
    use features::text::Speaker;
    let u = transcript.read(file)?;
    let participant = u.iter().filter(|u| u.speaker == Speaker::Participant).count();
    let words =
        |s: Speaker| -> usize { u.iter().filter(|u| u.speaker == s).map(|u| u.text.split_whitespace().count()).sum() };
    let timed = u.iter().filter(|u| u.end_ms > u.start_ms).count();
    session::check_limits(&u)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "file": file.display().to_string(),
            "utterances": u.len(),
            "participant_utterances": participant,
            "participant_words": words(Speaker::Participant),
            "interviewer_words": words(Speaker::Interviewer),
            "timed": timed,
        }));
    } else {
        out!(
            "{}: {} utterances ({} the participant's, {} words; {} the interviewer's, {} words, left out of the \
             text features); {}",
            file.display(),
            u.len(),
            participant,
            words(Speaker::Participant),
            u.len() - participant,
            words(Speaker::Interviewer),
            if timed == u.len() {
                "all timed".to_owned()
            } else {
                format!("{} without times (the device finds utterances by voice activity)", u.len() - timed)
            }
        );
    }
    Ok(())
}

/// `mimml transcript push`: into the session the device is capturing (a kiosk's, say).
pub(crate) fn push_transcript(
    ctx: &Ctx,
    port: &PortArgs,
    file: &Path,
    transcript: &TranscriptArgs,
    session: Option<SessionId>,
) -> anyhow::Result<()> {
    let utterances = transcript.read(file)?;
    let (mut client, info) = ctx.connect(port)?;
    let session = match (session, info.active_session) {
        (Some(s), _) => s,
        (None, Some(a)) if a.state == protocol::SessionState::Capturing => a.session,
        (None, _) => {
            anyhow::bail!("{} is not capturing a session: nothing to push the transcript into", info.device_id)
        }
    };
    let bar = ProgressBar::new(utterances.len() as u64).with_style(
        ProgressStyle::with_template("  pushing transcript [{bar:30}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let pushed = session::push_transcript(&mut client, session, &utterances, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    pushed?;
    out!("{} utterance(s) pushed into session {session} on {}", utterances.len(), info.device_id);
    Ok(())
}

/// `mimml session list`.
pub(crate) fn list(ctx: &Ctx, port: &PortArgs) -> anyhow::Result<()> {
    let (_, info) = ctx.connect(port)?;
    if ctx.json {
        print_json(&report::info_json(&info)["active_session"]);
        return Ok(());
    }
    match info.active_session {
        None => out!("no session running on {}", info.device_id),
        Some(s) => out!(
            "session {} on {}: {:?}, {:.1} s captured",
            s.session,
            info.device_id,
            s.state,
            f64::from(s.captured_ms) / 1000.0
        ),
    }
    Ok(())
}

/// `mimml session abort`.
pub(crate) fn abort(ctx: &Ctx, port: &PortArgs, session: SessionId) -> anyhow::Result<()> {
    let (mut client, _) = ctx.connect(port)?;
    let status = client.abort_session(session)?;
    out!("session {session}: {:?}", status.state);
    Ok(())
}

/// `mimml session stop`: ends a session and waits for its result.
pub(crate) fn stop(ctx: &Ctx, port: &PortArgs, session: SessionId) -> anyhow::Result<()> {
    let (mut client, info) = ctx.connect(port)?;
    let record = session::stop_session(&mut client, session)?;
    if ctx.json {
        print_json(&report::record_json(info.device_id.as_str(), &record, &ctx.model(&record)));
    } else {
        out!("{}", report::describe(info.device_id.as_str(), &record, &ctx.model(&record)));
    }
    Ok(())
}

/// `mimml session run`: start, transcript push, stop, result.
pub(crate) fn run(
    ctx: &Ctx,
    port: &PortArgs,
    transcript: &Path,
    transcript_args: &TranscriptArgs,
    label: &str,
    modalities: Modalities,
) -> anyhow::Result<()> {
    let utterances = transcript_args.read(transcript)?;
    let (mut client, info) = ctx.connect(port)?;
    let outcome = run_with_progress(&mut client, &utterances, label, modalities)?;
    if ctx.json {
        print_json(&report::record_json(info.device_id.as_str(), &outcome.record, &ctx.model(&outcome.record)));
    } else {
        out!("{}", report::describe(info.device_id.as_str(), &outcome.record, &ctx.model(&outcome.record)));
        out!("  (not yet in a database: run `mimml sync --port {}`)", port.port);
    }
    Ok(())
}
