//! `mimml`: the host side of the MIMML screening system, the tool a clinic runs. `main` parses
//! the command line and hands each command to the module of its group; `cli` declares them all.

mod cli;
mod context;
mod devices;
mod flashing;
mod keys;
mod results;
mod sessions;

use clap::Parser;
use host::db::Filter;
use protocol::Modalities;

use cli::{BundleCmd, Cli, Cmd, KeysCmd, ModelCmd, SessionCmd, TranscriptCmd};
use context::Ctx;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    host::terminal::init_logging(cli.verbose);
    let ctx = Ctx::new(&cli);
    match cli.cmd {
        Cmd::Devices => devices::list(),
        Cmd::Info { port } => devices::info(&ctx, &port),
        Cmd::Pair { port, code, name } => devices::pair(&ctx, &port, code, &name),
        Cmd::Unpair { port } => devices::unpair(&ctx, &port),
        Cmd::Keys { cmd: KeysCmd::Generate { out, name } } => keys::generate(&out, &name),
        Cmd::Keys { cmd: KeysCmd::Host } => keys::host(&ctx),
        Cmd::Bundle { cmd: BundleCmd::Sign { key, version, bundle } } => keys::sign(&key, version, &bundle),
        Cmd::Bundle { cmd: BundleCmd::Verify { trusted_keys, bundle } } => keys::verify(&trusted_keys, &bundle),
        Cmd::Flash { port, bundle, allow_downgrade, confirm } => {
            flashing::flash(&ctx, &port, &bundle, allow_downgrade, confirm)
        }
        Cmd::Model { cmd: ModelCmd::Confirm { port } } => flashing::confirm(&ctx, &port),
        Cmd::Model { cmd: ModelCmd::Rollback { port } } => flashing::rollback(&ctx, &port),
        Cmd::Transcript { cmd: TranscriptCmd::Check { file, transcript } } => {
            sessions::check_transcript(&ctx, &file, &transcript)
        }
        Cmd::Transcript { cmd: TranscriptCmd::Push { port, file, transcript, session } } => {
            sessions::push_transcript(&ctx, &port, &file, &transcript, session)
        }
        Cmd::Session { cmd: SessionCmd::List { port } } => sessions::list(&ctx, &port),
        Cmd::Session { cmd: SessionCmd::Abort { port, session } } => sessions::abort(&ctx, &port, session),
        Cmd::Session { cmd: SessionCmd::Stop { port, session } } => sessions::stop(&ctx, &port, session),
        Cmd::Session { cmd: SessionCmd::Run { port, transcript, transcript_args, label, no_audio, no_video } } => {
            let mut modalities = Modalities::ALL;
            modalities.set(Modalities::AUDIO, !no_audio);
            modalities.set(Modalities::VIDEO, !no_video);
            sessions::run(&ctx, &port, &transcript, &transcript_args, &label, modalities)
        }
        Cmd::Sync { port, db } => results::sync(&ctx, &port, &db.db),
        Cmd::Forward { from, to } => results::forward(&ctx, &from, &to),
        Cmd::Results { db, device, conflicts: true } => results::conflicts(&db.db, device.as_deref()),
        Cmd::Results { db, device, conflicts: false } => results::list(&ctx, &db.db, device),
        Cmd::Report { db, device, since, format, out } => {
            results::report(&ctx, &db.db, Filter { device, since_ms: since }, format, out.as_deref())
        }
    }
}
