//! The kiosk screen: one page served on the device's loopback, shown by a browser in kiosk
//! mode (`chromium --kiosk --app=http://127.0.0.1:PORT/`).
//!
//! * `GET /` — the page (`device/kiosk/screen.html`: plain HTML, CSS and a little JavaScript).
//! * `GET /events` — server-sent events: the [`View`] as JSON, each time it changes.
//! * `POST /tap` — a tap, as JSON (`{"tap":"start"}`, `{"tap":"answer","value":2}`, …).
//!
//! axum runs on a thread of its own with a single-threaded tokio runtime; the kiosk publishes
//! views from the serve loop and takes taps from a channel, so the device's loop stays
//! synchronous. Only 127.0.0.1 is bound: the page is for the screen on the device.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;

use super::machine::Input;

const PAGE: &str = include_str!("../../kiosk/screen.html");

/// What the screen shows now. The page renders it as it is; it holds no state of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct View {
    /// "idle", "consent", "prompt", "questionnaire", "processing" or "done".
    pub screen: &'static str,
    /// The main text of the screen (consent text, prompt, item, closing text).
    pub text: String,
    /// The research box's text (consent screen).
    pub research: Option<String>,
    /// "Question 3 of 7", "Item 2 of 9".
    pub step: Option<String>,
    /// An answer window is open: the recording indicator shows.
    pub recording: bool,
    /// Whole seconds left in the open answer window.
    pub seconds_left: Option<u32>,
    /// Microphone level, 0–1 (0 when unknown).
    pub level: f32,
    /// The questionnaire's stem and answer options (label, value).
    pub stem: Option<String>,
    /// Answer options.
    pub options: Vec<(String, u8)>,
    /// Where the questionnaire's wording comes from.
    pub source: Option<String>,
    /// The safety message (PHQ-9 item 9 answered above 0).
    pub crisis: Option<String>,
    /// Research units only: the model's result.
    pub result: Option<String>,
}

/// A tap on the page.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(tag = "tap", rename_all = "lowercase")]
pub enum Tap {
    /// "Start".
    Start,
    /// "I agree", with the research box.
    Agree {
        /// The research box is ticked.
        #[serde(default)]
        research: bool,
    },
    /// "No thanks".
    Decline,
    /// "Stop".
    Stop,
    /// "Done" (this answer).
    Done,
    /// A questionnaire answer.
    Answer {
        /// 0–3.
        value: u8,
    },
    /// "Start again" on the closing screen.
    Close,
}

impl From<Tap> for Input {
    fn from(t: Tap) -> Input {
        match t {
            Tap::Start | Tap::Close => Input::Start,
            Tap::Agree { research } => Input::Agree { research },
            Tap::Decline => Input::Decline,
            Tap::Stop => Input::Stop,
            Tap::Done => Input::AnswerDone,
            Tap::Answer { value } => Input::Answer(value),
        }
    }
}

#[derive(Clone)]
struct Shared {
    views: watch::Receiver<View>,
    taps: mpsc::Sender<Input>,
}

/// The screen's web server.
pub struct Screen {
    addr: SocketAddr,
    views: watch::Sender<View>,
    taps: mpsc::Receiver<Input>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Screen {
    /// Serves the page on 127.0.0.1:`port` (0: any free port; see [`addr`](Self::addr)).
    pub fn serve(port: u16) -> std::io::Result<Screen> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (views, views_rx) = watch::channel(View { screen: "idle", ..View::default() });
        let (taps_tx, taps) = mpsc::channel();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let shared = Shared { views: views_rx, taps: taps_tx };
        let thread = std::thread::Builder::new().name("kiosk-screen".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!("kiosk screen: {e}"),
                };
                let app = Router::new()
                    .route("/", get(page))
                    .route("/events", get(events))
                    .route("/tap", post(tap))
                    .with_state(shared);
                // Stopping drops the server and its open event streams with the runtime.
                tokio::select! {
                    served = axum::serve(listener, app).into_future() => {
                        if let Err(e) = served {
                            tracing::error!("kiosk screen: {e}");
                        }
                    }
                    _ = stopped => {}
                }
            });
        })?;
        tracing::info!(url = %format!("http://{addr}/"), "kiosk screen served");
        Ok(Screen { addr, views, taps, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// Where the page is.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shows `view` (pushed to the page only if it changed).
    pub fn publish(&self, view: View) {
        self.views.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
    }

    /// The taps since the last call.
    pub fn taps(&self) -> Vec<Input> {
        self.taps.try_iter().collect()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        // Open event streams end with the runtime.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(PAGE))
}

async fn events(State(s): State<Shared>) -> impl IntoResponse {
    let stream = WatchStream::new(s.views.clone())
        .map(|view| Event::default().json_data(&view).or_else(|_| Ok::<_, std::convert::Infallible>(Event::default())));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn tap(State(s): State<Shared>, axum::Json(tap): axum::Json<Tap>) -> StatusCode {
    match s.taps.send(tap.into()) {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    /// This machine's own IPv4 addresses other than loopback (the kernel's local host routes).
    fn other_addresses() -> Vec<Ipv4Addr> {
        let trie = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        let lines: Vec<&str> = trie.lines().collect();
        let mut found: Vec<Ipv4Addr> = lines
            .windows(2)
            .filter(|w| w[1].contains("/32 host LOCAL"))
            .filter_map(|w| w[0].trim().trim_start_matches("|--").trim().parse().ok())
            .filter(|a: &Ipv4Addr| !a.is_loopback())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn the_screen_is_reachable_on_loopback_only() {
        let screen = Screen::serve(0).expect("serves");
        let port = screen.addr().port();
        assert_eq!(screen.addr().ip(), std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        let timeout = Duration::from_secs(2);
        TcpStream::connect_timeout(&screen.addr(), timeout).expect("the device's own browser reaches it");
        // Every other address of this machine (a network's, a USB gadget's) refuses it.
        for a in other_addresses() {
            let e = TcpStream::connect_timeout(&(a, port).into(), timeout);
            assert!(e.is_err(), "the kiosk screen answered on {a}:{port}");
        }
    }
}
