//! Writes the report samples the README shows (`docs/reports/`): every format of
//! `mimml report` on `tests::report_samples()`, generated at a fixed time so they change only
//! when the formats do.
//!
//! `cargo run -p tests --example report_samples [-- DIR]`

use host::models::Catalogue;
use host::report::{fhir, html, listing};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "docs/reports".into());
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let results = tests::report_samples();
    let models = Catalogue::load(&[]);
    let at = 1_780_100_000_000;
    std::fs::write(dir.join("report.txt"), listing::table(&results, &models))?;
    std::fs::write(dir.join("report.csv"), listing::csv(&results, &models)?)?;
    std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&listing::json(&results, &models))? + "\n")?;
    std::fs::write(
        dir.join("report.fhir.json"),
        serde_json::to_string_pretty(&fhir::bundle(&results, &models, at))? + "\n",
    )?;
    std::fs::write(dir.join("report.html"), html::document(&results, &models, at))?;
    println!("report samples written to {}", dir.display());
    Ok(())
}
