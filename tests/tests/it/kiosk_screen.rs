//! The kiosk screen in a real browser: Debian's chromium, headless, driven over the DevTools
//! protocol, through a whole kiosk session on the simulated device (sample media, the shipped
//! model) — idle, consent, the interview's prompts, the PHQ-9 with its safety path, processing,
//! the closing screen. Each screen is saved as a PNG (`target/kiosk-screens/`; also to the
//! folder `MIMML_SCREENSHOTS` names, which is how the README's images are made).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROME").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium (scripts/install_system_packages.sh; the README's test command runs it) or set CHROME",
        path.display()
    );
    path
}

/// Evaluates `condition` (JavaScript) until it is true.
fn wait_for(tab: &Tab, condition: &str) {
    // The result is computed on the real pipeline before the closing screen: allow for it.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = tab.evaluate(condition, false).expect("evaluates").value;
        if v == Some(serde_json::Value::Bool(true)) {
            return;
        }
        let shown = tab.evaluate("document.getElementById('app').innerText", false).ok().and_then(|r| r.value);
        assert!(Instant::now() < deadline, "never true: {condition}\nthe page shows: {shown:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn screen_is(tab: &Tab, screen: &str) {
    wait_for(tab, &format!("document.getElementById('app').dataset.screen === '{screen}'"));
}

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector).unwrap_or_else(|e| panic!("{selector}: {e}")).click().expect("click");
}

fn text(tab: &Tab) -> String {
    let v = tab.evaluate("document.body.innerText", false).expect("evaluates").value;
    v.and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn shoot(tab: &Tab, dirs: &[PathBuf], name: &str) {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    for dir in dirs {
        std::fs::create_dir_all(dir).expect("screenshot folder");
        std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
    }
}

fn script(dir: &Path) -> device::kiosk::Script {
    // Three prompts of the shipped script, PHQ-9, no lead: the browser clicks through in seconds.
    let full = device::kiosk::Script::default_script();
    let mut s = device::kiosk::Script::from_toml(
        &device::kiosk::script::DEFAULT
            .replace("lead_s = 2", "lead_s = 0")
            .replace("instrument = \"phq8\"", "instrument = \"phq9\""),
        &dir.display().to_string(),
    )
    .expect("valid");
    s.prompts.truncate(3);
    assert_eq!(s.prompts[0], full.prompts[0]);
    s
}

#[test]
fn a_whole_kiosk_session_in_a_real_browser() {
    let chrome = chromium();
    let data = tempfile::tempdir().expect("tempdir");
    let sample = features::assets::dir().join("sample/session-001");
    let mut server = device::simulated(data.path(), &sample).expect("the simulated device opens");
    let screen = device::kiosk::Screen::serve(0).expect("serves on a free loopback port");
    let url = format!("http://{}/", screen.addr());
    let kiosk = device::kiosk::Kiosk::new(script(data.path()), true, Box::new(device::kiosk::Silent));
    server.set_kiosk(kiosk.with_screen(screen));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let device = std::thread::spawn(move || {
        server.idle(Duration::from_secs(300), &flag);
        server
    });

    let started = Instant::now();
    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../kiosk-screens")];
    dirs.extend(std::env::var_os("MIMML_SCREENSHOTS").map(PathBuf::from));
    let browser = Browser::new(LaunchOptions {
        path: Some(chrome),
        headless: true,
        // CI runs as root, where chromium's sandbox cannot start.
        sandbox: false,
        window_size: Some((800, 480)),
        idle_browser_timeout: Duration::from_secs(120),
        ..LaunchOptions::default()
    })
    .expect("chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(Duration::from_secs(20));
    // The official 7" display's 800x480, whatever the headless window's decorations.
    tab.call_method(headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride {
        width: 800,
        height: 480,
        device_scale_factor: 1.0,
        mobile: false,
        scale: None,
        screen_width: None,
        screen_height: None,
        position_x: None,
        position_y: None,
        dont_set_visible_size: None,
        screen_orientation: None,
        viewport: None,
        display_feature: None,
        device_posture: None,
    })
    .expect("viewport");
    tab.navigate_to(&url).expect("navigates").wait_until_navigated().expect("loads");

    screen_is(&tab, "idle");
    shoot(&tab, &dirs, "1-idle");
    click(&tab, "#start");
    screen_is(&tab, "consent");
    assert!(text(&tab).contains("not a diagnosis"));
    shoot(&tab, &dirs, "2-consent");
    click(&tab, "#agree");
    for n in 1..=3 {
        wait_for(&tab, &format!("document.getElementById('step').textContent === 'Question {n} of 3'"));
        wait_for(&tab, "document.getElementById('recording') !== null");
        if n == 1 {
            assert!(text(&tab).contains("where you grew up"), "{}", text(&tab));
            shoot(&tab, &dirs, "3-interview");
        }
        // An answer of about a second.
        std::thread::sleep(Duration::from_millis(1_000));
        click(&tab, "#done");
    }
    screen_is(&tab, "questionnaire");
    assert!(text(&tab).contains("Little interest or pleasure in doing things"), "{}", text(&tab));
    // The item and every answer fit the screen without scrolling.
    wait_for(
        &tab,
        "[...document.querySelectorAll('#text, #answer-0, #answer-3, #stop')].every(e => { \
         const r = e.getBoundingClientRect(); return r.height > 0 && r.top >= 0 && r.bottom <= 480; })",
    );
    shoot(&tab, &dirs, "4-questionnaire");
    for item in 1..=9 {
        wait_for(&tab, &format!("document.getElementById('step').textContent.endsWith('item {item} of 9')"));
        click(&tab, if item == 9 { "#answer-1" } else { "#answer-0" });
    }
    // The safety message shows at once, while the result is still being computed.
    wait_for(&tab, "document.getElementById('crisis') !== null");
    screen_is(&tab, "done");
    wait_for(&tab, "document.getElementById('crisis') !== null");
    let shown = text(&tab);
    assert!(shown.contains("116 123"), "the crisis message shows at once: {shown}");
    assert!(!shown.contains("P(depressed)") && !shown.contains("positive") && !shown.contains("negative"), "{shown}");
    shoot(&tab, &dirs, "5-done-safety");

    eprintln!("browser session: {:.1} s", started.elapsed().as_secs_f32());
    stop.store(true, Ordering::Relaxed);
    let server = device.join().expect("device thread");
    let records: Vec<_> = server.log().after(0, 8).cloned().collect();
    assert_eq!(records.len(), 1, "the kiosk session's result is in the log");
    let r = &records[0];
    assert!(r.flags.contains(protocol::ResultFlags::URGENT | protocol::ResultFlags::KIOSK), "{:?}", r.flags);
    assert_eq!(r.questionnaire.as_ref().map(protocol::Questionnaire::score), Some(1));
}
