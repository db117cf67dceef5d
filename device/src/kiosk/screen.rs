//! The kiosk screen: one page served on the device's loopback, shown by a browser in kiosk
//! mode (`chromium --kiosk --app=http://127.0.0.1:PORT/`).
//!
//! * `GET /` — the page (`device/kiosk/screen.html`: plain HTML, CSS and a little JavaScript).
//! * `GET /events` — server-sent events: the [`View`] as JSON, each time it changes.
//! * `POST /tap` — a tap, as JSON (`{"tap":"start"}`, `{"tap":"answer","value":2}`, …).
//!
//! [`app`] is the whole web side — routes, the tap's parsing, every refusal mapped to a status
//! in one place ([`ScreenError`]) — over two channels, so it is tested without a socket or a
//! browser. [`Screen`] serves it: axum runs on a thread of its own with a single-threaded tokio
//! runtime; the kiosk publishes a view on each clock tick of the device's loop, and taps reach
//! the loop as events through a channel, so the device's loop stays synchronous. Only 127.0.0.1
//! is bound: the page is for the screen on the device.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
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

/// Which screen the page shows; the page's script switches on its name ("idle", "consent", …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Showing {
    /// Waiting for a patient: Start.
    #[default]
    Idle,
    /// The consent text with the research box: I agree / No thanks.
    Consent,
    /// An interview prompt, with its answer window.
    Prompt,
    /// A questionnaire item with its answer options.
    Questionnaire,
    /// The result is being computed.
    Processing,
    /// The closing text (and the safety message when it applies).
    Done,
}

/// What the screen shows now. The page renders it as it is; it holds no state of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct View {
    /// Which screen.
    pub screen: Showing,
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

/// What the web side holds: the view to show, and where taps go.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The current view; every change is pushed to the page.
    pub views: watch::Receiver<View>,
    /// Taps, as the kiosk machine's inputs.
    pub taps: mpsc::Sender<Input>,
}

/// The page, its event stream and its taps, over `shared`.
pub fn app(shared: Shared) -> Router {
    Router::new().route("/", get(page)).route("/events", get(events)).route("/tap", post(tap)).with_state(shared)
}

/// Why a request was refused; the one place a refusal becomes a status.
#[derive(Debug, thiserror::Error)]
pub enum ScreenError {
    /// The body is not a tap: not JSON, not of the JSON content type, or no tap this page sends.
    #[error("not a tap: {0}")]
    NotATap(#[from] JsonRejection),
    /// The kiosk no longer takes taps (it is shutting down).
    #[error("the kiosk is not taking taps")]
    KioskGone,
}

impl IntoResponse for ScreenError {
    fn into_response(self) -> axum::response::Response {
        let status = match &self {
            // axum's own choice per rejection: 415 without the JSON content type, 400 for
            // malformed JSON, 422 for JSON that is no tap.
            ScreenError::NotATap(rejection) => rejection.status(),
            ScreenError::KioskGone => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, self.to_string()).into_response()
    }
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
        let (views, views_rx) = watch::channel(View::default());
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
                // Stopping drops the server and its open event streams with the runtime.
                tokio::select! {
                    served = axum::serve(listener, app(shared)).into_future() => {
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

async fn tap(State(s): State<Shared>, tap: Result<axum::Json<Tap>, JsonRejection>) -> Result<StatusCode, ScreenError> {
    let axum::Json(tap) = tap?;
    s.taps.send(tap.into()).map_err(|_| ScreenError::KioskGone)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpStream};
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// The app over fresh channels: its view sender and the taps that arrive.
    fn fresh() -> (Router, watch::Sender<View>, mpsc::Receiver<Input>) {
        let (views, views_rx) = watch::channel(View::default());
        let (taps_tx, taps) = mpsc::channel();
        (app(Shared { views: views_rx, taps: taps_tx }), views, taps)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    fn post_tap(body: &str, content_type: Option<&str>) -> Request<Body> {
        let mut r = Request::post("/tap");
        if let Some(t) = content_type {
            r = r.header(header::CONTENT_TYPE, t);
        }
        r.body(Body::from(body.to_owned())).expect("request")
    }

    #[test]
    fn a_tap_reaches_the_kiosk_as_its_input() {
        let rt = runtime();
        for (body, input) in [
            (r#"{"tap":"start"}"#, Input::Start),
            (r#"{"tap":"close"}"#, Input::Start),
            (r#"{"tap":"agree","research":true}"#, Input::Agree { research: true }),
            (r#"{"tap":"agree"}"#, Input::Agree { research: false }),
            (r#"{"tap":"decline"}"#, Input::Decline),
            (r#"{"tap":"stop"}"#, Input::Stop),
            (r#"{"tap":"done"}"#, Input::AnswerDone),
            (r#"{"tap":"answer","value":2}"#, Input::Answer(2)),
        ] {
            let (app, _views, taps) = fresh();
            let r = rt.block_on(app.oneshot(post_tap(body, Some("application/json")))).expect("answers");
            assert_eq!(r.status(), StatusCode::NO_CONTENT, "{body}");
            assert_eq!(taps.try_iter().collect::<Vec<_>>(), vec![input], "{body}");
        }
    }

    #[test]
    fn what_is_not_a_tap_is_refused_with_its_status_and_reaches_nothing() {
        let rt = runtime();
        for (body, content_type, status) in [
            (r#"{"tap":"start"}"#, None, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (r#"{"tap":"start"}"#, Some("text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (r#"{"tap":"start""#, Some("application/json"), StatusCode::BAD_REQUEST),
            ("", Some("application/json"), StatusCode::BAD_REQUEST),
            (r#"{"tap":"reboot"}"#, Some("application/json"), StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"tap":"answer","value":300}"#, Some("application/json"), StatusCode::UNPROCESSABLE_ENTITY),
            (r#"{"tap":"answer"}"#, Some("application/json"), StatusCode::UNPROCESSABLE_ENTITY),
        ] {
            let (app, _views, taps) = fresh();
            let r = rt.block_on(app.oneshot(post_tap(body, content_type))).expect("answers");
            assert_eq!(r.status(), status, "{body} as {content_type:?}");
            let text = rt.block_on(r.into_body().collect()).expect("body").to_bytes();
            assert!(String::from_utf8_lossy(&text).starts_with("not a tap: "), "{text:?}");
            assert!(taps.try_recv().is_err(), "{body} reached the kiosk");
        }
        // A kiosk that has stopped taking taps.
        let (app, _views, taps) = fresh();
        drop(taps);
        let r = rt.block_on(app.oneshot(post_tap(r#"{"tap":"start"}"#, Some("application/json")))).expect("answers");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Only the three routes, each with its own method.
        for (method, uri) in [("GET", "/tap"), ("POST", "/"), ("GET", "/admin")] {
            let (app, _views, _taps) = fresh();
            let req = Request::builder().method(method).uri(uri).body(Body::empty()).expect("request");
            let r = rt.block_on(app.oneshot(req)).expect("answers");
            assert!(r.status().is_client_error(), "{method} {uri}: {}", r.status());
        }
    }

    #[test]
    fn the_page_is_served_fresh_and_the_events_start_with_the_current_view() {
        let rt = runtime();
        let (app, views, _taps) = fresh();
        let r =
            rt.block_on(app.clone().oneshot(Request::get("/").body(Body::empty()).expect("request"))).expect("page");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let page = rt.block_on(r.into_body().collect()).expect("body").to_bytes();
        assert_eq!(&page[..], PAGE.as_bytes());

        views.send_replace(View { screen: Showing::Consent, text: "Do you agree?".into(), ..View::default() });
        let r = rt.block_on(app.oneshot(Request::get("/events").body(Body::empty()).expect("request"))).expect("sse");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = r.into_body();
        let first = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), body.frame()).await })
            .expect("the first event comes at once")
            .expect("a frame")
            .expect("data")
            .into_data()
            .expect("bytes");
        let event = String::from_utf8_lossy(&first);
        let json = event.trim().strip_prefix("data: ").expect("one data line");
        let view: serde_json::Value = serde_json::from_str(json).expect("the view as JSON");
        assert_eq!((view["screen"].as_str(), view["text"].as_str()), (Some("consent"), Some("Do you agree?")));
    }

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
