//! dlib's HOG face detector (`dlib.get_frontal_face_detector()`): five linear filters over
//! Felzenszwalb HOG features of an image pyramid, evaluated from dlib's own serialized detector
//! so that its boxes and scores can be checked against dlib's on identical pixels:
//!
//! * the pyramid scales by 5/6 per level (`pyramid_down<6>`, dlib's bilinear resize with its
//!   4-lane float arithmetic) while the level is at least 64 px on each side;
//! * each level gives 31 planes of fHOG features over 8-px cells (18 signed and 9 unsigned
//!   orientations, 4 texture sums), padded by the filter's size;
//! * each filter (10×10 cells, an 80×80-px window) is applied as the sum of its separable
//!   rank-one parts, taken from an SVD of each plane's weights as dlib does when it loads a
//!   detector (parts below 1/1000 of the largest dropped); a window scoring at least the
//!   filter's bias plus the caller's adjustment is a candidate;
//! * candidates of all filters, strongest first, are kept unless they overlap a kept box by
//!   dlib's test (intersection over the *bounding* box of the two, or coverage).
//!
//! Sums run in the lane order and association of dlib's SSE code (`simd4f`/`simd8f`, no fused
//! multiply-add), so scores equal dlib's up to the last bits of the SVD.
//!
//! Written here: no Rust crate evaluates dlib's object detectors (and none reads its
//! serialization format).

use std::path::Path;

use image::GrayImage;

use crate::{Rect, VisionError};

/// A box in dlib's convention: inclusive corners, possibly partly outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boxi {
    pub left: i64,
    pub top: i64,
    pub right: i64,
    pub bottom: i64,
}

impl Boxi {
    pub fn width(&self) -> i64 {
        (self.right - self.left + 1).max(0)
    }

    pub fn height(&self) -> i64 {
        (self.bottom - self.top + 1).max(0)
    }

    fn area(&self) -> i64 {
        self.width() * self.height()
    }

    fn intersect(&self, o: &Boxi) -> Boxi {
        Boxi {
            left: self.left.max(o.left),
            top: self.top.max(o.top),
            right: self.right.min(o.right),
            bottom: self.bottom.min(o.bottom),
        }
    }

    /// The smallest box holding both (dlib's `rectangle + rectangle`).
    fn hull(&self, o: &Boxi) -> Boxi {
        Boxi {
            left: self.left.min(o.left),
            top: self.top.min(o.top),
            right: self.right.max(o.right),
            bottom: self.bottom.max(o.bottom),
        }
    }

    /// The part inside a `w`×`h` image as a [`Rect`] (None when nothing is inside).
    pub fn clip(&self, w: u32, h: u32) -> Option<Rect> {
        let inside = self.intersect(&Boxi { left: 0, top: 0, right: i64::from(w) - 1, bottom: i64::from(h) - 1 });
        (inside.area() > 0).then(|| Rect {
            x: inside.left as u32,
            y: inside.top as u32,
            w: inside.width() as u32,
            h: inside.height() as u32,
        })
    }

    /// Corners from real-valued ones, rounded as dlib's `drectangle` → `rectangle` (`lround`).
    fn rounded(l: f64, t: f64, r: f64, b: f64) -> Boxi {
        Boxi { left: l.round() as i64, top: t.round() as i64, right: r.round() as i64, bottom: b.round() as i64 }
    }
}

/// One detected face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub rect: Boxi,
    /// Score above the filter's threshold (dlib's `detection_confidence`).
    pub confidence: f64,
    /// Which filter fired (frontal, left, right, front rotated left, front rotated right).
    pub filter: usize,
}

#[derive(Debug, Clone)]
struct Filter {
    /// Per feature plane: rank-one parts (row filter over columns, column filter over rows).
    parts: Vec<Vec<(Vec<f32>, Vec<f32>)>>,
    bias: f64,
}

/// dlib's `object_detector<scan_fhog_pyramid<pyramid_down<6>>>`.
#[derive(Debug, Clone)]
pub struct HogDetector {
    cell: usize,
    /// Filter size in cells (rows, columns), padding included.
    fh: usize,
    fw: usize,
    padding: usize,
    max_levels: usize,
    min_level_w: i64,
    min_level_h: i64,
    iou: f64,
    covered: f64,
    filters: Vec<Filter>,
}

const PLANES: usize = 31;

impl HogDetector {
    pub fn load(path: &Path) -> Result<HogDetector, VisionError> {
        let bytes = std::fs::read(path).map_err(|e| VisionError::Malformed {
            path: path.display().to_string(),
            what: "cannot be read",
            source: e.into(),
        })?;
        HogDetector::from_bytes(&bytes)
            .map_err(|detail| VisionError::Model { path: path.display().to_string(), detail })
    }

    /// Reads dlib's serialization of the detector (what `dlib.fhog_object_detector.save` writes).
    pub fn from_bytes(bytes: &[u8]) -> Result<HogDetector, String> {
        let mut r = Reader { b: bytes, at: 0 };
        let version = r.int()?;
        if version != 2 {
            return Err(format!("object_detector version {version}: only version 2 (dlib ≥ 18.x) is read"));
        }
        if r.int()? != 1 {
            return Err("scan_fhog_pyramid: unsupported version".into());
        }
        let (max_feats, feats) = (r.int()?, r.int()?);
        if max_feats != 0 || feats != 0 {
            return Err("a detector saved with a loaded image: not a plain detector file".into());
        }
        let cell = r.positive("cell size")?;
        let padding = r.count("padding", 16)?;
        let (win_w, win_h) = (r.positive("window width")?, r.positive("window height")?);
        let max_levels = r.positive("pyramid levels")?;
        let (min_level_w, min_level_h) = (r.positive("min level width")?, r.positive("min level height")?);
        let _nuclear_norm = r.float()?;
        let dims = r.int()?;
        // The filter's size in cells: the window mapped to fHOG space, grown by the padding.
        let centred = |n: usize| -> (i64, i64) {
            let lo = -(n as i64) / 2;
            (lo, lo + n as i64 - 1)
        };
        let to_cells = |(lo, hi): (i64, i64)| -> usize {
            let f = |p: i64| (p - 1) / cell as i64 - 1;
            (f(hi) - f(lo) + 1 + 2 * padding as i64) as usize
        };
        let (fw, fh) = (to_cells(centred(win_w)), to_cells(centred(win_h)));
        let size = fw * fh;
        if dims != (size * PLANES) as i64 {
            return Err(format!("{dims} weights per filter; a {fw}×{fh}-cell fHOG filter has {}", size * PLANES));
        }
        let iou = r.float()?;
        let covered = r.float()?;
        let n = r.count("filters", 64)?;
        let mut filters = Vec::with_capacity(n);
        for _ in 0..n {
            let (rows, cols) = (r.int()?.abs(), r.int()?.abs());
            if cols != 1 || rows != dims + 1 {
                return Err(format!("a weight vector of {rows}×{cols}; expected {}×1", dims + 1));
            }
            let w: Vec<f64> = (0..rows).map(|_| r.float()).collect::<Result<_, _>>()?;
            filters.push(Filter { parts: separable(&w[..dims as usize], fh, fw), bias: w[dims as usize] });
        }
        if r.at != bytes.len() {
            return Err(format!("{} bytes after the detector", bytes.len() - r.at));
        }
        Ok(HogDetector {
            cell,
            fh,
            fw,
            padding,
            max_levels,
            min_level_w: min_level_w as i64,
            min_level_h: min_level_h as i64,
            iou,
            covered,
            filters,
        })
    }

    pub fn filters(&self) -> usize {
        self.filters.len()
    }

    /// The smallest face (box side in pixels) found without upsampling.
    pub fn window(&self) -> u32 {
        ((self.fw - 2 * self.padding) * self.cell) as u32
    }

    /// Faces in `gray`, strongest first, as dlib's `detector.run(img, upsample, adjust)`:
    /// `upsample` doublings first (dlib's `pyramid_up`), boxes mapped back.
    pub fn detect(&self, gray: &GrayImage, upsample: u32, adjust_threshold: f64) -> Vec<Detection> {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        if upsample == 0 {
            return self.detect_plain(gray.as_raw(), w, h, adjust_threshold);
        }
        let (mut img, mut iw, mut ih) = (gray.as_raw().clone(), w, h);
        for _ in 0..upsample {
            // dlib's pyramid_up with pyramid_down<2>: the image rectangle mapped up, rounded.
            let (ow, oh) = (2 * iw + 2, 2 * ih + 1);
            img = resize(&img, iw, ih, ow, oh);
            (iw, ih) = (ow, oh);
        }
        let mut dets = self.detect_plain(&img, iw, ih, adjust_threshold);
        for d in &mut dets {
            let (mut l, mut t, mut r, mut b) =
                (d.rect.left as f64, d.rect.top as f64, d.rect.right as f64, d.rect.bottom as f64);
            for _ in 0..upsample {
                (l, t, r, b) = (l / 2.0 - 1.25, t / 2.0 - 0.75, r / 2.0 - 1.25, b / 2.0 - 0.75);
            }
            d.rect = Boxi::rounded(l, t, r, b);
        }
        dets
    }

    fn detect_plain(&self, img: &[u8], w: usize, h: usize, adjust: f64) -> Vec<Detection> {
        // Levels while the level's rectangle stays at least the minimum size.
        let mut levels = 0;
        let (mut rw, mut rh) = (w as i64, h as i64);
        loop {
            let down = |n: i64| -> i64 {
                let (lo, hi) = (down_coord(0.0).round() as i64, down_coord((n - 1) as f64).round() as i64);
                (hi - lo + 1).max(0)
            };
            (rw, rh) = (down(rw), down(rh));
            levels += 1;
            if !(rw >= self.min_level_w && rh >= self.min_level_h && levels < self.max_levels) {
                break;
            }
        }
        BUFFERS.with_borrow_mut(|b| self.scan(img, w, h, levels, adjust, b))
    }

    fn scan(&self, img: &[u8], w: usize, h: usize, levels: usize, adjust: f64, b: &mut Buffers) -> Vec<Detection> {
        let mut cands = Vec::new();
        let (mut cur, mut cw, mut ch) = (std::borrow::Cow::Borrowed(img), w, h);
        let (mut saliency, mut scratch) = (std::mem::take(&mut b.saliency), std::mem::take(&mut b.scratch));
        for level in 0..levels {
            if level > 0 {
                let (nw, nh) = (5 * cw / 6, 5 * ch / 6);
                cur = std::borrow::Cow::Owned(resize(&cur, cw, ch, nw, nh));
                (cw, ch) = (nw, nh);
            }
            let feats = fhog(&cur, cw, ch, self.cell, self.fh, self.fw, b);
            if feats.nr == 0 || feats.nc == 0 {
                continue;
            }
            for (fi, f) in self.filters.iter().enumerate() {
                let thresh = f.bias + adjust;
                self.apply(f, &feats, &mut saliency, &mut scratch);
                let (r0, c0) = ((self.fh / 2) as i64, (self.fw / 2) as i64);
                let (r1, c1) = (feats.nr as i64 - (self.fh as i64 - 1) / 2, feats.nc as i64 - (self.fw as i64 - 1) / 2);
                for r in r0..r1 {
                    for c in c0..c1 {
                        let s = saliency[r as usize * feats.nc + c as usize];
                        if f64::from(s) >= thresh {
                            cands.push(Detection {
                                rect: self.window_box(r, c, level),
                                confidence: f64::from(s) - f.bias,
                                filter: fi,
                            });
                        }
                    }
                }
            }
        }
        (b.saliency, b.scratch) = (saliency, scratch);
        // Strongest first (dlib sorts with std::sort; ties are as rare as equal floats).
        cands.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        let mut kept: Vec<Detection> = Vec::new();
        for c in cands {
            if !kept.iter().any(|k| self.overlaps(&k.rect, &c.rect)) {
                kept.push(c);
            }
        }
        kept
    }

    /// dlib's `test_box_overlap`.
    fn overlaps(&self, a: &Boxi, b: &Boxi) -> bool {
        let inner = a.intersect(b).area() as f64;
        if inner == 0.0 {
            return false;
        }
        let outer = a.hull(b).area() as f64;
        inner / outer > self.iou || inner / a.area() as f64 > self.covered || inner / b.area() as f64 > self.covered
    }

    /// The image box of the window centred on fHOG cell (`r`, `c`) of pyramid level `level`.
    fn window_box(&self, r: i64, c: i64, level: usize) -> Boxi {
        let (bw, bh) = ((self.fw - 2 * self.padding) as i64, (self.fh - 2 * self.padding) as i64);
        let (l, t) = (c - bw / 2, r - bh / 2);
        let cell = self.cell as i64;
        let to_image = |p: i64, pad: usize| -> i64 {
            let p = (p + 1 - (pad as i64 - 1) / 2) * cell + 1;
            p + if p >= 0 { cell / 2 } else { -(cell / 2) }
        };
        let (mut x0, mut y0) = (to_image(l, self.fw) as f64, to_image(t, self.fh) as f64);
        let (mut x1, mut y1) = (to_image(l + bw - 1, self.fw) as f64, to_image(t + bh - 1, self.fh) as f64);
        for _ in 0..level {
            (x0, y0, x1, y1) = (up_coord(x0), up_coord(y0), up_coord(x1), up_coord(y1));
        }
        Boxi::rounded(x0, y0, x1, y1)
    }

    /// The filter's response at every cell: the sum over planes and rank-one parts of a row
    /// pass then a column pass (dlib's `float_spatially_filter_image_separable`, its 8-lane
    /// blocks and three interleaved accumulators included).
    fn apply(&self, f: &Filter, feats: &Fhog, out: &mut Vec<f32>, scratch: &mut Vec<f32>) {
        let (nr, nc) = (feats.nr, feats.nc);
        out.clear();
        out.resize(nr * nc, 0.0);
        scratch.resize(nr * nc, 0.0);
        let (first_row, first_col) = (self.fh / 2, self.fw / 2);
        let last_row = nr as i64 - (self.fh as i64 - 1) / 2;
        let last_col = nc as i64 - (self.fw as i64 - 1) / 2;
        if last_row <= first_row as i64 || last_col <= first_col as i64 {
            return;
        }
        let rows = feats.rows;
        for (r, row) in scratch.chunks_exact_mut(nc).enumerate() {
            if !(rows.0..rows.1).contains(&r) {
                row.fill(0.0);
            }
        }
        let span = Span { nc, rows, first_row, first_col, last_row: last_row as usize, last_col: last_col as usize };
        for (plane, parts) in f.parts.iter().enumerate() {
            let img = feats.plane(plane);
            for (rowf, colf) in parts {
                separable_pass(img, rowf, colf, span, scratch, out);
            }
        }
    }
}

/// Where a separable filter applies: rows `first_row..last_row`, columns `first_col..last_col`
/// of a plane `nc` wide.
#[derive(Debug, Clone, Copy)]
struct Span {
    nc: usize,
    /// Rows holding features; the others are the zero padding, whose row pass is zero
    /// (`+0.0`, as dlib's sums of `±0` products give) and is not recomputed.
    rows: (usize, usize),
    first_row: usize,
    first_col: usize,
    last_row: usize,
    last_col: usize,
}

/// One rank-one part added into `out`: rows through `rowf` into `scratch`, then columns
/// through `colf`. Compiled for AVX2 too (same arithmetic: nothing is fused); 10-tap filters
/// (dlib's face detector) get a copy with the taps known, free of bounds checks.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn separable_pass(img: &[f32], rowf: &[f32], colf: &[f32], s: Span, scratch: &mut [f32], out: &mut [f32]) {
    // With the taps' count a constant after inlining, the loads need no bounds checks.
    match (<&[f32; 10]>::try_from(rowf), <&[f32; 10]>::try_from(colf)) {
        (Ok(r), Ok(c)) => separable_body(img, r, c, s, scratch, out),
        _ => separable_body(img, rowf, colf, s, scratch, out),
    }
}

#[inline(always)]
fn separable_body(img: &[f32], rowf: &[f32], colf: &[f32], s: Span, scratch: &mut [f32], out: &mut [f32]) {
    let (nc, taps_r, taps_c) = (s.nc, rowf.len(), colf.len());
    for r in s.rows.0..s.rows.1 {
        let src = &img[r * nc..(r + 1) * nc];
        let dst = &mut scratch[r * nc..(r + 1) * nc];
        let mut c = s.first_col;
        while c + 8 <= s.last_col {
            let win = &src[c - s.first_col..c - s.first_col + taps_r + 7];
            dst[c..c + 8].copy_from_slice(&lanes(rowf, |k| slice8(win, k)));
            c += 8;
        }
        for c in c..s.last_col {
            let win = &src[c - s.first_col..c - s.first_col + taps_r];
            let mut t = 0.0f32;
            for (p, k) in win.iter().zip(rowf) {
                t += p * k;
            }
            dst[c] = t;
        }
    }
    let scratch = &*scratch;
    for r in s.first_row..s.last_row {
        let band = &scratch[(r - s.first_row) * nc..(r - s.first_row + taps_c) * nc];
        let o_row = &mut out[r * nc..(r + 1) * nc];
        let mut c = s.first_col;
        while c + 8 <= s.last_col {
            let t = lanes(colf, |k| slice8(band, k * nc + c));
            for (o, v) in o_row[c..c + 8].iter_mut().zip(t) {
                *o += v;
            }
            c += 8;
        }
        for c in c..s.last_col {
            let mut t = 0.0f32;
            for (m, k) in colf.iter().enumerate() {
                t += band[m * nc + c] * k;
            }
            o_row[c] += t;
        }
    }
}

#[inline(always)]
fn slice8(v: &[f32], at: usize) -> &[f32; 8] {
    v[at..at + 8].try_into().unwrap_or(&[0.0; 8])
}

/// One 8-lane block of a 1-D filter: three accumulators over taps `3k`, `3k+1`, `3k+2`, the
/// remaining taps into the first, then `first + (second + third)`.
#[inline(always)]
fn lanes<'a>(taps: &[f32], at: impl Fn(usize) -> &'a [f32; 8]) -> [f32; 8] {
    let (mut t1, mut t2, mut t3) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    let mut n = 0;
    while n + 2 < taps.len() {
        let (p1, p2, p3) = (at(n), at(n + 1), at(n + 2));
        let (k1, k2, k3) = (taps[n], taps[n + 1], taps[n + 2]);
        for l in 0..8 {
            t1[l] += p1[l] * k1;
            t2[l] += p2[l] * k2;
            t3[l] += p3[l] * k3;
        }
        n += 3;
    }
    while n < taps.len() {
        let (p, k) = (at(n), taps[n]);
        for l in 0..8 {
            t1[l] += p[l] * k;
        }
        n += 1;
    }
    std::array::from_fn(|l| t1[l] + (t2[l] + t3[l]))
}

/// `pyramid_down<6>::point_down` on one coordinate.
fn down_coord(p: f64) -> f64 {
    (p - 0.3) * (5.0 / 6.0)
}

/// `pyramid_down<6>::point_up` on one coordinate.
fn up_coord(p: f64) -> f64 {
    p * (6.0 / 5.0) + 0.3
}

/// Splits each plane's `fh`×`fw` weights into rank-one parts by SVD (f64), dropping singular
/// values under max(1e-4, 1/1000 of the largest), parts in decreasing order, each `√σ·u`
/// (over rows) and `√σ·v` (over columns) in f32: dlib's `build_fhog_filterbank`.
fn separable(w: &[f64], fh: usize, fw: usize) -> Vec<Vec<(Vec<f32>, Vec<f32>)>> {
    w.chunks(fh * fw)
        .map(|plane| {
            let (sigma, u, v) = svd(plane, fh, fw);
            let mut order: Vec<usize> = (0..sigma.len()).collect();
            order.sort_by(|&a, &b| sigma[b].total_cmp(&sigma[a]));
            let largest = order.first().map_or(0.0, |&i| sigma[i]);
            let thresh = (largest * 0.001).max(1e-4);
            order
                .into_iter()
                .filter(|&j| sigma[j] >= thresh)
                .map(|j| {
                    let k = sigma[j].sqrt();
                    let row: Vec<f32> = v[j].iter().map(|x| (x * k) as f32).collect();
                    let col: Vec<f32> = u[j].iter().map(|x| (x * k) as f32).collect();
                    (row, col)
                })
                .collect()
        })
        .collect()
}

/// Singular value decomposition of a small `rows`×`cols` row-major matrix by one-sided Jacobi
/// rotations (Hestenes): singular values, left and right singular vectors (one per column).
///
/// Written here: the detector's filters are exactly low-rank (most singular values ~1e-17), and
/// nalgebra 0.34's Golub–Kahan SVD returns decompositions of such matrices that do not
/// reproduce them (errors of 1e-2 on three of the five face filters); Jacobi rotations are
/// accurate to rounding on them and small enough to keep here.
fn svd(a: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut u: Vec<Vec<f64>> = (0..cols).map(|c| (0..rows).map(|r| a[r * cols + c]).collect()).collect();
    let mut v: Vec<Vec<f64>> = (0..cols).map(|c| (0..cols).map(|r| f64::from(u8::from(r == c))).collect()).collect();
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    for _sweep in 0..100 {
        let mut rotated = false;
        for p in 0..cols {
            for q in p + 1..cols {
                let (alpha, beta, gamma) = (dot(&u[p], &u[p]), dot(&u[q], &u[q]), dot(&u[p], &u[q]));
                if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for m in [&mut u, &mut v] {
                    let (lo, hi) = m.split_at_mut(q);
                    for (x, y) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                        (*x, *y) = (c * *x - s * *y, s * *x + c * *y);
                    }
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let sigma: Vec<f64> = u.iter().map(|col| dot(col, col).sqrt()).collect();
    for (col, s) in u.iter_mut().zip(&sigma) {
        if *s > 0.0 {
            col.iter_mut().for_each(|x| *x /= s);
        }
    }
    (sigma, u, v)
}

/// fHOG planes of one image, each `nr`×`nc`, zero where the filter's padding lies.
struct Fhog<'a> {
    nr: usize,
    nc: usize,
    /// The rows that hold features, `start..end` (the rest is the filter's zero padding).
    rows: (usize, usize),
    data: &'a [f32],
}

/// Working memory of a scan, kept per thread between detections: a detector that runs every
/// few frames would otherwise fault in megabytes of fresh pages each time.
#[derive(Debug, Default)]
struct Buffers {
    hist: Vec<f32>,
    norm: Vec<f32>,
    data: Vec<f32>,
    bins: Vec<u8>,
    mags: Vec<f32>,
    saliency: Vec<f32>,
    scratch: Vec<f32>,
}

thread_local!(static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default());

/// `v` as `n` zeros, keeping its allocation.
fn zeroed<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    v.clear();
    v.resize(n, T::default());
}

impl Fhog<'_> {
    fn plane(&self, o: usize) -> &[f32] {
        &self.data[o * self.nr * self.nc..(o + 1) * self.nr * self.nc]
    }
}

/// The nine unit directions dlib snaps gradients to (as f32, its literal values).
const DIRECTIONS: [[f32; 2]; 9] = [
    [1.0, 0.0],
    [0.9397, 0.3420],
    [0.7660, 0.6428],
    [0.500, 0.8660],
    [0.1736, 0.9848],
    [-0.1736, 0.9848],
    [-0.5000, 0.8660],
    [-0.7660, 0.6428],
    [-0.9397, 0.3420],
];

/// The orientation bin (0..18) of a gradient: the direction with the largest |dot|, its
/// sign choosing the half.
#[inline]
fn orientation(gx: f32, gy: f32) -> usize {
    let (mut best, mut bin) = (0.0f32, 0);
    for (o, d) in DIRECTIONS.iter().enumerate() {
        let dot = gx * d[0] + gy * d[1];
        if dot > best {
            best = dot;
            bin = o;
        } else if -dot > best {
            best = -dot;
            bin = o + 9;
        }
    }
    bin
}

/// Orientation bins and gradient magnitudes of one image row's columns `1..visible_nc`
/// (central differences; the magnitude in f32 from the exact integer square).
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn gradients(rows: (&[u8], &[u8], &[u8]), visible_nc: usize, bins: &mut [u8], mags: &mut [f32]) {
    let (up, mid, down) = rows;
    let mut x = 1;
    while x + 8 <= visible_nc {
        let gx: [f32; 8] = std::array::from_fn(|l| (i32::from(mid[x + l + 1]) - i32::from(mid[x + l - 1])) as f32);
        let gy: [f32; 8] = std::array::from_fn(|l| (i32::from(down[x + l]) - i32::from(up[x + l])) as f32);
        let (mut best, mut bin) = ([0.0f32; 8], [0u8; 8]);
        for (o, d) in DIRECTIONS.iter().enumerate() {
            for l in 0..8 {
                let dot = gx[l] * d[0] + gy[l] * d[1];
                let pos = dot > best[l];
                best[l] = if pos { dot } else { best[l] };
                bin[l] = if pos { o as u8 } else { bin[l] };
                let neg = -dot > best[l];
                best[l] = if neg { -dot } else { best[l] };
                bin[l] = if neg { o as u8 + 9 } else { bin[l] };
            }
        }
        for l in 0..8 {
            mags[x + l] = (gx[l] * gx[l] + gy[l] * gy[l]).sqrt();
        }
        bins[x..x + 8].copy_from_slice(&bin);
        x += 8;
    }
    for x in x..visible_nc {
        let gx = (i32::from(mid[x + 1]) - i32::from(mid[x - 1])) as f32;
        let gy = (i32::from(down[x]) - i32::from(up[x])) as f32;
        bins[x] = orientation(gx, gy) as u8;
        mags[x] = (gx * gx + gy * gy).sqrt();
    }
}

/// dlib's `extract_fhog_features` for a grayscale image (cell size > 1), with its float
/// arithmetic: bilinear votes into cell histograms (8-column blocks and the scalar remainder
/// computed as dlib's two code paths do), block energies, clipped normalised features.
fn fhog<'b>(
    img: &[u8],
    w: usize,
    h: usize,
    cell: usize,
    pad_rows: usize,
    pad_cols: usize,
    b: &'b mut Buffers,
) -> Fhog<'b> {
    let empty = Fhog { nr: 0, nc: 0, rows: (0, 0), data: &[] };
    let cells_nr = (f64::from(h as f32 / cell as f32) + 0.5) as usize;
    let cells_nc = (f64::from(w as f32 / cell as f32) + 0.5) as usize;
    if cells_nr < 3 || cells_nc < 3 {
        return empty;
    }
    let hist_nc = cells_nc + 2;
    let hist = &mut b.hist;
    zeroed(hist, (cells_nr + 2) * hist_nc * 18);
    let visible_nr = (cells_nr * cell).min(h) - 1;
    let visible_nc = (cells_nc * cell).min(w) - 1;
    // Columns 1.. in whole blocks of 8 take dlib's SIMD path, the rest its scalar path; the
    // two compute the horizontal vote weights differently (f32 with truncation vs f64 with
    // floor), and the weights depend on the column only.
    let blocks_end = 1 + (visible_nc.saturating_sub(1) / 8) * 8;
    let blocks_end = if visible_nc >= 8 { blocks_end.min(visible_nc) } else { 1 };
    let cellf = cell as f32;
    let columns: Vec<(usize, f32, f32)> = (0..visible_nc.max(1))
        .map(|x| {
            if x < blocks_end {
                let xp = (x as f32 + 0.5) / cellf + 0.5;
                let ixp = xp as i32;
                let vx0 = xp - ixp as f32;
                (ixp as usize, 1.0 - vx0, vx0)
            } else {
                let xp = ((x as f64 + 0.5) / cell as f64 - 0.5) as f32;
                let ixp = xp.floor() as i64;
                let vx0 = xp - ixp as f32;
                ((ixp + 1) as usize, 1.0 - vx0, vx0)
            }
        })
        .collect();
    let (bins, mags) = (&mut b.bins, &mut b.mags);
    zeroed(bins, w);
    zeroed(mags, w);
    for y in 1..visible_nr.max(1) {
        let yp = ((y as f64 + 0.5) / f64::from(cellf) - 0.5) as f32;
        let iyp = yp.floor() as i64;
        let vy0 = yp - iyp as f32;
        let vy1 = 1.0 - vy0;
        let row0 = ((iyp + 1) as usize) * hist_nc;
        let row1 = row0 + hist_nc;
        let rows = (&img[(y - 1) * w..y * w], &img[y * w..(y + 1) * w], &img[(y + 1) * w..(y + 2) * w]);
        gradients(rows, visible_nc, bins, mags);
        let (h0, h1) = (row0 * 18, row1 * 18);
        let mut vote = |x: usize, a: f32, b: f32, c: f32, d: f32| {
            let (o, ixp) = (usize::from(bins[x]), columns[x].0 * 18);
            hist[h0 + ixp + o] += a;
            hist[h1 + ixp + o] += b;
            hist[h0 + ixp + 18 + o] += c;
            hist[h1 + ixp + 18 + o] += d;
        };
        for x in 1..blocks_end.min(visible_nc) {
            let (_, vx1, vx0) = columns[x];
            let (vx1, vx0) = (vx1 * mags[x], vx0 * mags[x]);
            vote(x, vy1 * vx1, vy0 * vx1, vy1 * vx0, vy0 * vx0);
        }
        for x in blocks_end.max(1)..visible_nc {
            let (_, vx1, vx0) = columns[x];
            let v = mags[x];
            vote(x, vy1 * vx1 * v, vy0 * vx1 * v, vy1 * vx0 * v, vy0 * vx0 * v);
        }
    }
    let cell_hist = |r: usize, c: usize| -> &[f32] {
        let at = ((r + 1) * hist_nc + c + 1) * 18;
        &hist[at..at + 18]
    };
    let norm = &mut b.norm;
    zeroed(norm, cells_nr * cells_nc);
    for r in 0..cells_nr {
        for c in 0..cells_nc {
            let hc = cell_hist(r, c);
            let n = &mut norm[r * cells_nc + c];
            for o in 0..9 {
                let s = hc[o] + hc[o + 9];
                *n += s * s;
            }
        }
    }
    let (hog_nr, hog_nc) = (cells_nr - 2, cells_nc - 2);
    let (nr, nc) = (hog_nr + pad_rows - 1, hog_nc + pad_cols - 1);
    let (off_r, off_c) = ((pad_rows - 1) / 2, (pad_cols - 1) / 2);
    let data = &mut b.data;
    zeroed(data, PLANES * nr * nc);
    let nm = |r: usize, c: usize| norm[r * cells_nc + c];
    const EPS: f32 = 0.0001;
    let texture = (2.0f64 * 0.2357) as f32;
    let sum4 = |h: [f32; 4]| (h[0] + h[1]) + (h[2] + h[3]);
    for y in 0..hog_nr {
        for x in 0..hog_nc {
            let z1 = [nm(y + 1, x + 1), nm(y, x + 1), nm(y + 1, x), nm(y, x)];
            let z2 = [nm(y + 1, x + 2), nm(y, x + 2), nm(y + 1, x + 1), nm(y, x + 1)];
            let z3 = [nm(y + 2, x + 1), nm(y + 1, x + 1), nm(y + 2, x), nm(y + 1, x)];
            let z4 = [nm(y + 2, x + 2), nm(y + 1, x + 2), nm(y + 2, x + 1), nm(y + 1, x + 1)];
            let nn: [f32; 4] = std::array::from_fn(|l| 0.2f32 * ((((z1[l] + z2[l]) + z3[l]) + z4[l]) + EPS).sqrt());
            let n: [f32; 4] = std::array::from_fn(|l| 0.1f32 / nn[l]);
            let clip = |v: f32| -> [f32; 4] { std::array::from_fn(|l| v.min(nn[l]) * n[l]) };
            let hc = cell_hist(y + 1, x + 1);
            let at = (y + off_r) * nc + x + off_c;
            let mut t = [0.0f32; 4];
            for o in (0..18).step_by(3) {
                let (h0, h1, h2) = (clip(hc[o]), clip(hc[o + 1]), clip(hc[o + 2]));
                data[o * nr * nc + at] = sum4(h0);
                data[(o + 1) * nr * nc + at] = sum4(h1);
                data[(o + 2) * nr * nc + at] = sum4(h2);
                for l in 0..4 {
                    t[l] += (h0[l] + h1[l]) + h2[l];
                }
            }
            for o in 0..9 {
                data[(o + 18) * nr * nc + at] = sum4(clip(hc[o] + hc[o + 9]));
            }
            for (l, v) in t.iter().enumerate() {
                data[(27 + l) * nr * nc + at] = v * texture;
            }
        }
    }
    Fhog { nr, nc, rows: (off_r, off_r + hog_nr), data: &b.data[..] }
}

/// dlib's bilinear `resize_image` for 8-bit grayscale: 4-lane float blocks (lane positions
/// accumulated in f32, truncated, `+ 0.5` then truncated) while a whole block fits, the rest
/// of the row in its scalar code (double weights, truncated). The horizontal positions and
/// weights are the same on every row, so they are worked out once.
fn resize(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh];
    if dw == 0 || dh == 0 || sw == 0 || sh == 0 {
        return out;
    }
    let x_scale = (sw - 1) as f64 / (dw.max(2) - 1) as f64;
    let y_scale = (sh - 1) as f64 / (dh.max(2) - 1) as f64;
    // The block path's columns: (left, 1 − frac, frac) in f32.
    let mut block: Vec<(usize, f32, f32)> = Vec::with_capacity(dw);
    {
        let x = -4.0 * x_scale;
        let step = (4.0 * x_scale) as f32;
        let mut xs = [x as f32, (x + x_scale) as f32, (x + 2.0 * x_scale) as f32, (x + 3.0 * x_scale) as f32];
        while block.len() + 4 <= dw {
            for v in &mut xs {
                *v += step;
            }
            let left: [i32; 4] = std::array::from_fn(|l| xs[l] as i32);
            if left[3] + 1 >= sw as i32 {
                break;
            }
            for l in 0..4 {
                let lr = xs[l] - left[l] as f32;
                block.push((left[l] as usize, 1.0 - lr, lr));
            }
        }
    }
    let c0 = block.len();
    // The scalar path's columns: (left, right, frac) with frac in f32 from f64 positions.
    let mut x = -x_scale + c0 as f64 * x_scale;
    let tail: Vec<(usize, usize, f32)> = (c0..dw)
        .map(|_| {
            x += x_scale;
            let left = x.floor() as usize;
            (left, (left + 1).min(sw - 1), (x - left as f64) as f32)
        })
        .collect();
    let mut y = -y_scale;
    for r in 0..dh {
        y += y_scale;
        let top = y.floor() as usize;
        let bottom = (top + 1).min(sh - 1);
        let tb = y - top as f64;
        let (tbf, inv_tbf) = (tb as f32, (1.0 - tb) as f32);
        let (t_row, b_row) = (&src[top * sw..(top + 1) * sw], &src[bottom * sw..(bottom + 1) * sw]);
        let o_row = &mut out[r * dw..(r + 1) * dw];
        for (o, &(li, inv_lr, lr)) in o_row.iter_mut().zip(&block) {
            let (tlf, trf, blf, brf) = (inv_tbf * inv_lr, inv_tbf * lr, tbf * inv_lr, tbf * lr);
            let v = tlf * f32::from(t_row[li])
                + trf * f32::from(t_row[li + 1])
                + blf * f32::from(b_row[li])
                + brf * f32::from(b_row[li + 1]);
            *o = (f64::from(v) + 0.5) as u8;
        }
        for (o, &(left, right, lr)) in o_row[c0..].iter_mut().zip(&tail) {
            let top_v = (1.0 - lr) * f32::from(t_row[left]) + lr * f32::from(t_row[right]);
            let bottom_v = (1.0 - lr) * f32::from(b_row[left]) + lr * f32::from(b_row[right]);
            let v = ((1.0 - tb) * f64::from(top_v) + tb * f64::from(bottom_v)) as f32;
            *o = v.clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// dlib's serialization: integers as a control byte (size in the low nibble, sign in the top
/// bit) and that many little-endian bytes; floats as an integer mantissa and exponent.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<i64, String> {
        let ctl = *self.b.get(self.at).ok_or("file ends inside the detector")?;
        let size = usize::from(ctl & 0x0F);
        if size == 0 || size > 8 {
            return Err(format!("bad integer at byte {}", self.at));
        }
        let bytes = self.b.get(self.at + 1..self.at + 1 + size).ok_or("file ends inside the detector")?;
        self.at += 1 + size;
        let mut v: u64 = 0;
        for &x in bytes.iter().rev() {
            v = (v << 8) | u64::from(x);
        }
        let v = v as i64;
        Ok(if ctl & 0x80 != 0 { -v } else { v })
    }

    fn float(&mut self) -> Result<f64, String> {
        let at = self.at;
        let mantissa = self.int()?;
        let exponent = self.int()?;
        match exponent {
            32000 => Ok(f64::INFINITY),
            32001 => Ok(f64::NEG_INFINITY),
            32002 => Ok(f64::NAN),
            e if (-1100..=1100).contains(&e) => Ok(mantissa as f64 * 2f64.powi(e as i32)),
            _ => Err(format!("bad number at byte {at}")),
        }
    }

    fn positive(&mut self, what: &str) -> Result<usize, String> {
        match self.int()? {
            v @ 1..=100_000 => Ok(v as usize),
            v => Err(format!("{what} {v}")),
        }
    }

    fn count(&mut self, what: &str, max: i64) -> Result<usize, String> {
        match self.int()? {
            v if (0..=max).contains(&v) => Ok(v as usize),
            v => Err(format!("{what} {v}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlib_integers_and_floats_read_back() {
        // 2, -1, 1000, 9.0 (18·2⁻¹)
        let b = [0x01, 0x02, 0x81, 0x01, 0x02, 0xe8, 0x03, 0x01, 0x12, 0x81, 0x01];
        let mut r = Reader { b: &b, at: 0 };
        assert_eq!(r.int().unwrap(), 2);
        assert_eq!(r.int().unwrap(), -1);
        assert_eq!(r.int().unwrap(), 1000);
        assert_eq!(r.float().unwrap(), 9.0);
        assert!(r.int().unwrap_err().contains("ends"));
    }

    #[test]
    fn a_broken_detector_file_is_an_error_not_a_panic() {
        let good = std::fs::read(crate::default_detector()).expect("committed detector");
        assert!(HogDetector::from_bytes(&good).is_ok());
        for cut in [0, 1, 5, 40, good.len() / 2, good.len() - 1] {
            assert!(HogDetector::from_bytes(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(HogDetector::from_bytes(&extra).unwrap_err().contains("after"));
        let mut bad = good;
        bad[0] = 0x7f;
        assert!(HogDetector::from_bytes(&bad).is_err());
    }

    #[test]
    fn boxes_map_like_dlibs_windows() {
        let d = HogDetector::load(&crate::default_detector()).unwrap();
        assert_eq!((d.fw, d.fh, d.padding, d.cell, d.filters()), (10, 10, 0, 8, 5));
        assert_eq!(d.window(), 80);
        // Cell (5, 5) of level 0 is the window at the image's top-left corner.
        assert_eq!(d.window_box(5, 5, 0), Boxi { left: -27, top: -27, right: 53, bottom: 53 });
        // One level up scales by 6/5 and shifts by 0.3.
        let b = d.window_box(5, 5, 1);
        assert_eq!((b.left, b.right), (-32, 64));
    }

    #[test]
    fn separable_parts_rebuild_every_filter() {
        let bytes = std::fs::read(crate::default_detector()).unwrap();
        let d = HogDetector::from_bytes(&bytes).unwrap();
        let mut r = Reader { b: &bytes, at: 0 };
        for _ in 0..11 {
            r.int().unwrap();
        }
        let _skipped = (r.float().unwrap(), r.int().unwrap(), r.float().unwrap(), r.float().unwrap(), r.int().unwrap());
        for f in &d.filters {
            let _shape = (r.int().unwrap(), r.int().unwrap());
            let w: Vec<f64> = (0..3101).map(|_| r.float().unwrap()).collect();
            for (p, parts) in f.parts.iter().enumerate() {
                for i in 0..10 {
                    for j in 0..10 {
                        let s: f64 = parts.iter().map(|(row, col)| f64::from(col[i]) * f64::from(row[j])).sum();
                        assert!((s - w[p * 100 + i * 10 + j]).abs() < 1e-6, "plane {p} ({i}, {j})");
                    }
                }
            }
        }
    }

    #[test]
    fn resize_keeps_flat_images_flat_and_corners_in_place() {
        let src = vec![77u8; 30 * 20];
        assert!(resize(&src, 30, 20, 25, 16).iter().all(|&v| v == 77));
        let ramp: Vec<u8> = (0..20).flat_map(|_| (0..30u8).map(|x| x * 8)).collect();
        let out = resize(&ramp, 30, 20, 25, 16);
        assert_eq!(out[0], 0);
        assert_eq!(out[24], 232);
    }
}
