//! The contract: which [`Response`] answers which [`Request`], stated once, in code.
//!
//! Each endpoint is a type implementing [`Endpoint`]: the request it wraps, the response that
//! answers it, and a name for logs. A typed client calls `call::<endpoints::SessionStop>(id)`
//! and gets a [`SessionStatus`] back, or the response it got instead; nothing matches variant
//! names by hand. [`Response::Error`] may answer any request.
//!
//! | endpoint           | request                      | response                         |
//! |--------------------|------------------------------|----------------------------------|
//! | [`Hello`]          | [`Request::Hello`]           | [`Response::DeviceInfo`]         |
//! | [`Ping`]           | [`Request::Ping`]            | [`Response::Pong`]               |
//! | [`SessionStart`]   | [`Request::SessionStart`]    | [`Response::Session`]            |
//! | [`Transcript`]     | [`Request::TranscriptChunk`] | [`Response::TranscriptAccepted`] |
//! | [`SessionStop`]    | [`Request::SessionStop`]     | [`Response::Session`]            |
//! | [`SessionStatus`]  | [`Request::SessionStatus`]   | [`Response::Session`]            |
//! | [`SessionAbort`]   | [`Request::SessionAbort`]    | [`Response::Session`]            |
//! | [`Sync`]           | [`Request::Sync`]            | [`Response::Records`]            |
//! | [`SyncAck`]        | [`Request::SyncAck`]         | [`Response::Acked`]              |
//! | [`UploadBegin`]    | [`Request::UploadBegin`]     | [`Response::Upload`]             |
//! | [`UploadChunk`]    | [`Request::UploadChunk`]     | [`Response::Upload`]             |
//! | [`UploadStatus`]   | [`Request::UploadStatus`]    | [`Response::Upload`]             |
//! | [`UploadCommit`]   | [`Request::UploadCommit`]    | [`Response::Upload`]             |
//! | [`UploadConfirm`]  | [`Request::UploadConfirm`]   | [`Response::Upload`]             |
//! | [`UploadRollback`] | [`Request::UploadRollback`]  | [`Response::Upload`]             |
//! | [`Auth`]           | [`Request::Auth`]            | [`Response::DeviceInfo`]         |
//! | [`PairBegin`]      | [`Request::PairBegin`]       | [`Response::Pairing`]            |
//! | [`PairConfirm`]    | [`Request::PairConfirm`]     | [`Response::Paired`]             |
//! | [`Unpair`]         | [`Request::Unpair`]          | [`Response::Paired`]             |
//!
//! (A test holds this table to the `endpoint!` declarations below: one row each, in order.)

use crate::messages::{self as m, Request, Response};

/// One request kind and the response kind that answers it.
pub trait Endpoint {
    /// What the request carries.
    type Request;
    /// What the answer carries.
    type Response;
    /// The endpoint's name, for logs and errors.
    const NAME: &'static str;
    /// The request as a message.
    fn request(req: Self::Request) -> Request;
    /// The answer taken out of a response; any other response (an error included) is handed
    /// back unchanged.
    // No allocator: the response is handed back by value, as it arrived; it cannot be boxed.
    #[allow(clippy::result_large_err)]
    fn response(resp: Response) -> Result<Self::Response, Response>;
}

macro_rules! endpoint {
    ($(#[$doc:meta])* $ep:ident, $name:literal, $req_v:ident($req:ty) => $resp_v:ident($resp:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ep;

        impl Endpoint for $ep {
            type Request = $req;
            type Response = $resp;
            const NAME: &'static str = $name;
            fn request(req: $req) -> Request {
                Request::$req_v(req)
            }
            fn response(resp: Response) -> Result<$resp, Response> {
                match resp {
                    Response::$resp_v(r) => Ok(r),
                    other => Err(other),
                }
            }
        }
    };
    ($(#[$doc:meta])* $ep:ident, $name:literal, $req_v:ident => $resp_v:ident($resp:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ep;

        impl Endpoint for $ep {
            type Request = ();
            type Response = $resp;
            const NAME: &'static str = $name;
            fn request((): ()) -> Request {
                Request::$req_v
            }
            fn response(resp: Response) -> Result<$resp, Response> {
                match resp {
                    Response::$resp_v(r) => Ok(r),
                    other => Err(other),
                }
            }
        }
    };
}

endpoint!(
    /// Opens a connection: the device checks the protocol version and says what it is.
    Hello, "hello", Hello(m::Hello) => DeviceInfo(m::DeviceInfo)
);
endpoint!(
    /// Liveness: the device echoes the nonce.
    Ping, "ping", Ping(u32) => Pong(u32)
);
endpoint!(
    /// Starts capturing a session.
    SessionStart, "session start", SessionStart(m::SessionStart) => Session(m::SessionStatus)
);
endpoint!(
    /// Pushes one part of one utterance; answers with the complete utterances held.
    Transcript, "transcript", TranscriptChunk(m::TranscriptChunk) => TranscriptAccepted(m::TranscriptAccepted)
);
endpoint!(
    /// Ends capture; the device computes on a worker and answers `Processing` at once.
    SessionStop, "session stop", SessionStop(m::SessionId) => Session(m::SessionStatus)
);
endpoint!(
    /// Where a session stands; `Done` carries its result's sequence number.
    SessionStatus, "session status", SessionStatus(m::SessionId) => Session(m::SessionStatus)
);
endpoint!(
    /// Ends a session without a result (any host; a session whose host has gone).
    SessionAbort, "session abort", SessionAbort(m::SessionId) => Session(m::SessionStatus)
);
endpoint!(
    /// Result records after the host's cursor.
    Sync, "sync", Sync(m::SyncCursor) => Records(m::RecordBatch)
);
endpoint!(
    /// The host has stored every record up to a sequence number.
    SyncAck, "sync ack", SyncAck(m::Ack) => Acked(m::Ack)
);
endpoint!(
    /// Starts or resumes a model upload.
    UploadBegin, "upload begin", UploadBegin(m::UploadBegin) => Upload(m::UploadStatus)
);
endpoint!(
    /// One piece of a model upload.
    UploadChunk, "upload chunk", UploadChunk(m::UploadChunk) => Upload(m::UploadStatus)
);
endpoint!(
    /// Where a model upload stands.
    UploadStatus, "upload status", UploadStatus => Upload(m::UploadStatus)
);
endpoint!(
    /// Checks the uploaded bundle and stages it for trial.
    UploadCommit, "upload commit", UploadCommit => Upload(m::UploadStatus)
);
endpoint!(
    /// Keeps the model on trial.
    UploadConfirm, "upload confirm", UploadConfirm => Upload(m::UploadStatus)
);
endpoint!(
    /// Goes back to the previous model.
    UploadRollback, "upload rollback", UploadRollback => Upload(m::UploadStatus)
);
endpoint!(
    /// Proves a paired host key on this connection; answers with the full device info.
    Auth, "auth", Auth(m::Auth) => DeviceInfo(m::DeviceInfo)
);
endpoint!(
    /// Asks to pair a host key.
    PairBegin, "pair begin", PairBegin(m::PairBegin) => Pairing(m::PairChallenge)
);
endpoint!(
    /// Completes a pairing with the code shown at the device.
    PairConfirm, "pair confirm", PairConfirm(m::PairConfirm) => Paired(m::Pairings)
);
endpoint!(
    /// Forgets this host's key.
    Unpair, "unpair", Unpair => Paired(m::Pairings)
);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;
    use std::vec::Vec;

    /// (endpoint, request variant, response variant) of each `endpoint!` declaration in this file.
    fn declared() -> Vec<(String, String, String)> {
        let src = include_str!("endpoints.rs");
        let mut out = Vec::new();
        for decl in src.split("\nendpoint!(").skip(1) {
            let line = decl.lines().find(|l| l.contains("=>")).expect("an endpoint line");
            let (lhs, rhs) = line.split_once("=>").expect("=>");
            let fields: Vec<&str> = lhs.split(',').map(str::trim).collect();
            let request = fields[2].split('(').next().expect("variant");
            let response = rhs.trim().split('(').next().expect("variant");
            out.push((fields[0].into(), request.into(), response.into()));
        }
        out
    }

    #[test]
    fn the_doc_table_names_every_endpoint_with_its_messages() {
        let table: Vec<(String, String, String)> = include_str!("endpoints.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | [`"))
            .map(|row| {
                let cells: Vec<String> =
                    row.split('|').map(|c| c.trim().trim_start_matches("[`").trim_end_matches("`]").into()).collect();
                let strip = |c: &str, p: &str| String::from(c.strip_prefix(p).unwrap_or(c));
                (cells[0].clone(), strip(&cells[1], "Request::"), strip(&cells[2], "Response::"))
            })
            .collect();
        let declared = declared();
        assert_eq!(declared.len(), 19, "endpoints declared: {declared:?}");
        assert_eq!(table, declared);
    }
}
