//! `bench/run inference`: per-session inference latency of the committed MIMML bundle, tract
//! against onnxruntime on the same ONNX and the same input, one thread each; the f32, f16 and
//! int8 exports of the committed checkpoint (sizes, latency, |Δp| against f32); peak RSS. The input is a 10-minute session: its participant turns, cut to the bundle's
//! `max_segments` as the device does, for each modality.
//!
//! Usage (through bench/run, which makes the onnxruntime venv): `inference PYTHON`.

use std::time::Instant;

use runtime::bundle::Bundle;
use runtime::onnx::OnnxModel;
use train::mimml::export::{Quantization, to_onnx_quantized};
use train::mimml::train::Trained;

/// Peak resident set size of this process, kB (Linux).
fn peak_rss_kb() -> u64 {
    bench::proc_status_kb("VmHWM:")
}

/// Per-session time of plain tract — its own ONNX import, GRUs included, none of our changes —
/// on the same model and input, specialised to the same shapes, one state per run as
/// `SimplePlan::run` does: what our `Gru` op and reused state are measured against.
fn stock_tract_ms(path: &std::path::Path, rows: &[Vec<Vec<f32>>], n: u32) -> anyhow::Result<f64> {
    use tract_onnx::prelude::*;
    let mut model = tract_onnx::onnx().model_for_path(path)?;
    for (m, r) in rows.iter().enumerate() {
        model = model.with_input_fact(m, f32::fact([1, r.len(), r[0].len()]).into())?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let inputs = || -> anyhow::Result<TVec<TValue>> {
        let mut v: TVec<TValue> = rows
            .iter()
            .map(|r| Ok(Tensor::from_shape(&[1, r.len(), r[0].len()], &r.concat())?.into()))
            .collect::<anyhow::Result<_>>()?;
        v.push(Tensor::from_shape(&[1, 3], &[1f32, 1.0, 1.0])?.into());
        Ok(v)
    };
    for _ in 0..5 {
        plan.run(inputs()?)?;
    }
    let start = Instant::now();
    for _ in 0..n {
        plan.run(inputs()?)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / f64::from(n))
}

/// Synthetic feature rows: `t` segments per modality.
fn session(t: usize) -> Vec<Vec<Vec<f32>>> {
    let widths = runtime::onnx::feature_widths();
    (0..3)
        .map(|m| {
            (0..t)
                .map(|i| (0..widths[m]).map(|j| ((i * 31 + j * 17 + m * 7) % 23) as f32 / 23.0 - 0.3).collect())
                .collect()
        })
        .collect()
}

/// One session through the bundle with tract and with onnxruntime.
struct Compared {
    tract_ms: f64,
    ort_ms: f64,
    /// |Δp| between the two.
    dp: f64,
    ort_version: serde_json::Value,
    /// tract's output.
    ours: runtime::Prediction,
}

/// One session through the bundle with tract and with onnxruntime, `n` runs each, one thread.
fn compare(bundle: &Bundle, rows: &[Vec<Vec<f32>>], python: &str, n: u32) -> anyhow::Result<Compared> {
    let refs: Vec<Vec<&[f32]>> = rows.iter().map(|r| r.iter().map(Vec::as_slice).collect()).collect();
    let run = || bundle.model.run([&refs[0], &refs[1], &refs[2]]);
    let ours = run()?;
    for _ in 0..5 {
        run()?;
    }
    let start = Instant::now();
    for _ in 0..n {
        run()?;
    }
    let tract_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(n);

    let tmp = tempfile::tempdir()?;
    let modality =
        |m: usize| serde_json::json!({ "shape": [1, rows[m].len(), rows[m][0].len()], "data": rows[m].concat() });
    let input = serde_json::json!({
        "audio": modality(0),
        "video": modality(1),
        "text": modality(2),
        "present": { "shape": [1, 3], "data": [1.0, 1.0, 1.0] },
    });
    let input_path = tmp.path().join("input.json");
    std::fs::write(&input_path, serde_json::to_vec(&input)?)?;
    let out = std::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ort_reference.py"))
        .arg(bundle.dir.join("model.onnx"))
        .arg(&input_path)
        .arg(n.to_string())
        .output()?;
    anyhow::ensure!(out.status.success(), "onnxruntime reference failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ort_ms = r["ms"].as_f64().unwrap_or(f64::NAN);
    let dp = (f64::from(ours.p_depressed) - r["p_depressed"].as_f64().unwrap_or(f64::NAN)).abs();
    Ok(Compared { tract_ms, ort_ms, dp, ort_version: r["version"].clone(), ours })
}

fn main() -> anyhow::Result<()> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let dir = device::bundled_model_dir();
    let bundle = Bundle::open(&dir)?;
    let t = bundle.manifest.max_segments;
    // A 10-minute interview has ~60-100 participant turns; the device keeps `max_segments`.
    let rows = session(t);
    let refs: Vec<Vec<&[f32]>> = rows.iter().map(|r| r.iter().map(Vec::as_slice).collect()).collect();
    let n = 200;
    let Compared { tract_ms, ort_ms, dp, ort_version: version, ours } = compare(&bundle, &rows, &python, n)?;
    let rss = peak_rss_kb();
    let stock_ms = stock_tract_ms(&dir.join("model.onnx"), &rows, n)?;
    // A short interview: fewer segments than the device keeps, so the general plan (symbolic
    // sequence length) serves it.
    let short = t / 3;
    let Compared { tract_ms: short_tract_ms, ort_ms: short_ort_ms, dp: short_dp, .. } =
        compare(&bundle, &session(short), &python, n)?;

    let size = std::fs::metadata(dir.join("model.onnx"))?.len();
    println!("bundle {} ({size} bytes, f32), {t} segments per modality", bundle.manifest.model_version);
    println!("tract        {tract_ms:.3} ms per session (one thread)");
    println!("onnxruntime  {ort_ms:.3} ms per session (one thread, {version})");
    println!("tract with its own GRU import instead of ours: {stock_ms:.3} ms");
    println!("|Δp| tract vs onnxruntime: {dp:.2e}; peak RSS {rss} kB");
    println!(
        "short session ({short} segments): tract {short_tract_ms:.3} ms, onnxruntime {short_ort_ms:.3} ms \
         (ratio {:.2}), |Δp| {short_dp:.2e}",
        short_tract_ms / short_ort_ms
    );

    // Quantised variants from the committed checkpoint.
    let (trained, meta) = Trained::load(&dir.with_file_name("mimml-synth-checkpoint"))?;
    let schema = features::schema::schema_hash();
    let mut sizes = Vec::new();
    let mut reference = None;
    for q in [Quantization::F32, Quantization::F16, Quantization::Int8] {
        let bytes = to_onnx_quantized(&trained, &meta.version, q)?;
        let m = OnnxModel::from_bytes(&bytes, &meta.version, schema, t)?;
        let p = m.run([&refs[0], &refs[1], &refs[2]])?.p_depressed;
        let reference_p = *reference.get_or_insert(p);
        let start = Instant::now();
        for _ in 0..n {
            m.run([&refs[0], &refs[1], &refs[2]])?;
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(n);
        println!(
            "{:<5} {:>7} bytes ({:.2} of f32), tract {ms:.3} ms, |Δp| vs f32 {:.1e}",
            q.name(),
            bytes.len(),
            bytes.len() as f64 / sizes.first().map_or(bytes.len(), |s: &(usize, f64)| s.0) as f64,
            (p - reference_p).abs()
        );
        sizes.push((bytes.len(), ms));
    }
    // f16 arithmetic (what the cuda feature runs on the Jetson's GPU), here on the CPU where
    // f16 is emulated: its accuracy is the point, not its speed.
    let half = OnnxModel::from_bytes_with(
        &std::fs::read(dir.join("model.onnx"))?,
        &bundle.manifest.model_version,
        schema,
        t,
        runtime::onnx::Precision::F16,
    )?;
    let half_dp = (half.run([&refs[0], &refs[1], &refs[2]])?.p_depressed - ours.p_depressed).abs();
    println!("f16 compute (the GPU path's arithmetic, run on the CPU): |Δp| vs f32 {half_dp:.1e}");
    let rss = rss.max(peak_rss_kb());
    println!(
        "RESULT inference tract_ms={tract_ms:.3} ort_ms={ort_ms:.3} ratio_tract_over_ort={:.2} \
         tract_stock_gru_ms={stock_ms:.3} short_ratio_tract_over_ort={:.2} f32_bytes={} f16_bytes={} \
         int8_bytes={} int8_over_f32={:.3} delta_p_vs_ort={dp:.1e} f16_compute_delta_p={half_dp:.1e} peak_rss_kb={rss}",
        tract_ms / ort_ms,
        short_tract_ms / short_ort_ms,
        sizes[0].0,
        sizes[1].0,
        sizes[2].0,
        sizes[2].0 as f64 / sizes[0].0 as f64
    );
    Ok(())
}
