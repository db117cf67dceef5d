//! Viola–Jones face detection with OpenCV's cascade files (Haar and LBP, the `traincascade`
//! XML format that Debian's `opencv-data` installs), evaluated the way OpenCV's
//! `CascadeClassifier::detectMultiScale` does so that its boxes can be checked against OpenCV's:
//!
//! * one image pyramid level per scale `1, f, f², …` while the scaled window fits the image;
//!   each level is the image resized to `round(W / s) × round(H / s)` (bilinear, OpenCV's
//!   fixed-point arithmetic), with integral images of sums and squared sums;
//! * the 24×24 window visits every 2nd pixel (every pixel from scale 2 up); a window rejected
//!   by the first stage skips one more step;
//! * Haar features are normalised by the window's standard deviation (inner 22×22), stumps
//!   compare against f32 thresholds, a stage passes when its sum reaches the stage threshold
//!   − 1e-5; LBP features are 3×3 block codes looked up in each stump's 256-bit subset;
//! * candidates are grouped like `groupRectangles(minNeighbors, eps = 0.2)`.
//!
//! Written here: no maintained Rust crate reads OpenCV cascades (rustface ships its own
//! SeetaFace model, which cannot be checked against OpenCV's `detectMultiScale`).

use std::path::Path;

use image::GrayImage;

use crate::{Rect, VisionError};

#[derive(Debug, Clone, Copy)]
struct HaarRect {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    weight: f32,
}

#[derive(Debug, Clone)]
enum Features {
    /// Up to three weighted rectangles each.
    Haar(Vec<Vec<HaarRect>>),
    /// The top-left block `(x, y, w, h)` of each 3×3 block grid.
    Lbp(Vec<[u32; 4]>),
}

#[derive(Debug, Clone, Copy)]
struct Stump {
    feature: usize,
    threshold: f32,
    left: f32,
    right: f32,
    /// LBP: index into `subsets` (8 × 32 bits).
    subset: usize,
}

#[derive(Debug, Clone, Copy)]
struct Stage {
    threshold: f32,
    first: usize,
    count: usize,
}

/// A boosted cascade of stumps, as trained by OpenCV's `traincascade`.
#[derive(Debug, Clone)]
pub struct Cascade {
    win_w: u32,
    win_h: u32,
    features: Features,
    stages: Vec<Stage>,
    stumps: Vec<Stump>,
    subsets: Vec<[u32; 8]>,
}

/// `detectMultiScale`'s parameters, with OpenCV's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectParams {
    pub scale_factor: f64,
    pub min_neighbors: usize,
    /// Smallest and largest window, pixels (0 = no limit).
    pub min_size: u32,
    pub max_size: u32,
}

impl Default for DetectParams {
    fn default() -> Self {
        DetectParams { scale_factor: 1.1, min_neighbors: 3, min_size: 0, max_size: 0 }
    }
}

const THRESHOLD_EPS: f32 = 1e-5;

fn bad(path: &str, detail: impl Into<String>) -> VisionError {
    VisionError::Model { path: path.to_owned(), detail: detail.into() }
}

fn numbers<T: std::str::FromStr>(node: roxmltree::Node<'_, '_>, path: &str) -> Result<Vec<T>, VisionError> {
    node.text()
        .unwrap_or("")
        .split_whitespace()
        .map(|t| t.parse::<T>().map_err(|_| bad(path, format!("line {}: bad number {t:?}", line_of(node)))))
        .collect()
}

fn line_of(node: roxmltree::Node<'_, '_>) -> u32 {
    node.document().text_pos_at(node.range().start).row
}

fn child<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
    path: &str,
) -> Result<roxmltree::Node<'a, 'i>, VisionError> {
    node.children()
        .find(|c| c.has_tag_name(name))
        .ok_or_else(|| bad(path, format!("line {}: <{}> has no <{name}>", line_of(node), node.tag_name().name())))
}

fn items<'a, 'i>(node: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(|c| c.has_tag_name("_"))
}

impl Cascade {
    pub fn load(path: &Path) -> Result<Cascade, VisionError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| VisionError::Malformed {
            path: origin.clone(),
            what: "cannot be read",
            source: e.into(),
        })?;
        Cascade::parse(&text, &origin)
    }

    /// Parses a `traincascade` XML (`<cascade>` with `<stageType>BOOST` and stumps).
    pub fn parse(xml: &str, origin: &str) -> Result<Cascade, VisionError> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| VisionError::Malformed {
            path: origin.to_owned(),
            what: "not XML",
            source: e.into(),
        })?;
        let cascade = doc
            .descendants()
            .find(|n| n.has_tag_name("cascade"))
            .ok_or_else(|| bad(origin, "no <cascade> (old-format cascades are not supported)"))?;
        let text_of = |name: &str| -> Result<String, VisionError> {
            Ok(child(cascade, name, origin)?.text().unwrap_or("").trim().to_owned())
        };
        let kind = text_of("featureType")?;
        let win_w: u32 = text_of("width")?.parse().map_err(|_| bad(origin, "bad <width>"))?;
        let win_h: u32 = text_of("height")?.parse().map_err(|_| bad(origin, "bad <height>"))?;
        if text_of("stageType")? != "BOOST" || !(4..=256).contains(&win_w) || !(4..=256).contains(&win_h) {
            return Err(bad(origin, "only BOOST cascades with windows of 4-256 pixels are supported"));
        }
        let lbp = match kind.as_str() {
            "HAAR" => false,
            "LBP" => true,
            other => return Err(bad(origin, format!("feature type {other} is not supported (HAAR, LBP)"))),
        };
        let (mut stages, mut stumps, mut subsets) = (Vec::new(), Vec::new(), Vec::new());
        for st in items(child(cascade, "stages", origin)?) {
            let threshold: f32 = child(st, "stageThreshold", origin)?
                .text()
                .unwrap_or("")
                .trim()
                .parse()
                .map_err(|_| bad(origin, format!("line {}: bad stage threshold", line_of(st))))?;
            let first = stumps.len();
            for wc in items(child(st, "weakClassifiers", origin)?) {
                let internal = child(wc, "internalNodes", origin)?;
                let leaves: Vec<f32> = numbers(child(wc, "leafValues", origin)?, origin)?;
                let at = line_of(internal);
                let (feature, threshold, subset) = if lbp {
                    let v: Vec<i64> = numbers(internal, origin)?;
                    if v.len() != 11 {
                        return Err(bad(origin, format!("line {at}: LBP node needs 11 numbers, has {}", v.len())));
                    }
                    let mut s = [0u32; 8];
                    for (d, &x) in s.iter_mut().zip(&v[3..]) {
                        *d = x as i32 as u32;
                    }
                    subsets.push(s);
                    (v[2], 0.0, subsets.len() - 1)
                } else {
                    let v: Vec<f64> = numbers(internal, origin)?;
                    if v.len() != 4 {
                        return Err(bad(origin, format!("line {at}: only stumps are supported (4 numbers per node)")));
                    }
                    (v[2] as i64, v[3] as f32, 0)
                };
                if leaves.len() != 2 || feature < 0 {
                    return Err(bad(origin, format!("line {at}: a stump needs 2 leaves and a feature index")));
                }
                stumps.push(Stump { feature: feature as usize, threshold, left: leaves[0], right: leaves[1], subset });
            }
            stages.push(Stage { threshold: threshold - THRESHOLD_EPS, first, count: stumps.len() - first });
        }
        let feats = child(cascade, "features", origin)?;
        let features = if lbp {
            let mut out = Vec::new();
            for f in items(feats) {
                let v: Vec<u32> = numbers(child(f, "rect", origin)?, origin)?;
                if v.len() != 4 || v[0] + 3 * v[2] > win_w || v[1] + 3 * v[3] > win_h {
                    return Err(bad(origin, format!("line {}: LBP rect outside the window", line_of(f))));
                }
                out.push([v[0], v[1], v[2], v[3]]);
            }
            Features::Lbp(out)
        } else {
            let mut out = Vec::new();
            for f in items(feats) {
                if child(f, "tilted", origin).ok().and_then(|t| t.text()).is_some_and(|t| t.trim() != "0") {
                    return Err(bad(origin, format!("line {}: tilted Haar features are not supported", line_of(f))));
                }
                let mut rects = Vec::new();
                for r in items(child(f, "rects", origin)?) {
                    let v: Vec<f64> = numbers(r, origin)?;
                    let ok = v.len() == 5 && v[..4].iter().all(|&x| x >= 0.0);
                    let (x, y, w, h) = (v[0] as u32, v[1] as u32, v[2] as u32, v[3] as u32);
                    if !ok || x + w > win_w || y + h > win_h || rects.len() == 3 {
                        return Err(bad(origin, format!("line {}: bad Haar rect", line_of(r))));
                    }
                    rects.push(HaarRect { x, y, w, h, weight: v[4] as f32 });
                }
                out.push(rects);
            }
            Features::Haar(out)
        };
        let n = match &features {
            Features::Haar(f) => f.len(),
            Features::Lbp(f) => f.len(),
        };
        if stages.is_empty() || stumps.iter().any(|s| s.feature >= n) {
            return Err(bad(origin, "no stages, or a stump names a feature that does not exist"));
        }
        Ok(Cascade { win_w, win_h, features, stages, stumps, subsets })
    }

    /// Face candidates before grouping, in image coordinates.
    pub fn candidates(&self, gray: &GrayImage, p: &DetectParams) -> Vec<Rect> {
        let (w, h) = gray.dimensions();
        let max = if p.max_size == 0 { w.min(h) } else { p.max_size };
        let mut out = Vec::new();
        let mut factor = 1.0f64;
        let mut level = Level::default();
        loop {
            let (ww, wh) = (round(f64::from(self.win_w) * factor), round(f64::from(self.win_h) * factor));
            if ww > max.min(w) || wh > max.min(h) || ww > w || wh > h {
                break;
            }
            if ww >= p.min_size && wh >= p.min_size {
                let sc = factor as f32;
                let (sw, sh) = (round_f32(w as f32 / sc), round_f32(h as f32 / sc));
                level.build(gray, sw, sh, matches!(self.features, Features::Haar(_)));
                self.scan(&level, sc, &mut out);
            }
            factor *= p.scale_factor;
        }
        out
    }

    /// `detectMultiScale`: candidates grouped with `min_neighbors`.
    pub fn detect(&self, gray: &GrayImage, p: &DetectParams) -> Vec<Rect> {
        self.detect_counted(gray, p).into_iter().map(|(r, _)| r).collect()
    }

    /// [`Cascade::detect`] with each box's neighbour count: how many candidate windows were
    /// grouped into it (OpenCV's `detectMultiScale` with `numDetections`). A real face is hit at
    /// many nearby positions and scales; a chance pattern in the background at few.
    pub fn detect_counted(&self, gray: &GrayImage, p: &DetectParams) -> Vec<(Rect, usize)> {
        group_rectangles(&self.candidates(gray, p), p.min_neighbors, 0.2)
    }

    fn scan(&self, level: &Level, sc: f32, out: &mut Vec<Rect>) {
        let step = if sc >= 2.0 { 1 } else { 2 };
        let (ww, wh) = (round_f32(self.win_w as f32 * sc), round_f32(self.win_h as f32 * sc));
        let (xs, ys) = (level.w.saturating_sub(self.win_w - 1), level.h.saturating_sub(self.win_h - 1));
        let mut y = 0;
        while y < ys {
            let mut x = 0;
            while x < xs {
                let r = self.run_at(level, x, y);
                if r > 0 {
                    out.push(Rect { x: round_f32(x as f32 * sc), y: round_f32(y as f32 * sc), w: ww, h: wh });
                }
                if r == 0 {
                    x += step;
                }
                x += step;
            }
            y += step;
        }
    }

    /// 1 = face, 0 = rejected by the first stage, < 0 otherwise.
    fn run_at(&self, l: &Level, x: u32, y: u32) -> i32 {
        let stride = (l.w + 1) as usize;
        let base = y as usize * stride + x as usize;
        let sum = |rx: u32, ry: u32, rw: u32, rh: u32| -> i32 {
            let a = base + ry as usize * stride + rx as usize;
            let b = a + rw as usize;
            let c = a + rh as usize * stride;
            let d = c + rw as usize;
            l.sum[a] - l.sum[b] - l.sum[c] + l.sum[d]
        };
        match &self.features {
            Features::Haar(features) => {
                let (nw, nh) = (self.win_w - 2, self.win_h - 2);
                let valsum = sum(1, 1, nw, nh);
                let a = base + stride + 1;
                let (b, c) = (a + nw as usize, a + nh as usize * stride);
                let d = c + nw as usize;
                let valsq = l.sq[a].wrapping_sub(l.sq[b]).wrapping_sub(l.sq[c]).wrapping_add(l.sq[d]);
                let area = f64::from(nw * nh);
                let nf = area * f64::from(valsq) - f64::from(valsum) * f64::from(valsum);
                if nf <= 0.0 {
                    return -1;
                }
                let norm = (1.0 / nf.sqrt()) as f32;
                if area * f64::from(norm) >= 0.1 {
                    return -1;
                }
                self.stages_pass(|s: &Stump| {
                    let rects = &features[s.feature];
                    let mut v = 0.0f32;
                    for r in rects {
                        v += r.weight * sum(r.x, r.y, r.w, r.h) as f32;
                    }
                    if v * norm < s.threshold { s.left } else { s.right }
                })
            }
            Features::Lbp(features) => self.stages_pass(|s: &Stump| {
                let [fx, fy, fw, fh] = features[s.feature];
                let block = |bx: u32, by: u32| sum(fx + bx * fw, fy + by * fh, fw, fh);
                let c = block(1, 1);
                let bit = |bx, by, v: i32| if block(bx, by) >= c { v } else { 0 };
                let code = bit(0, 0, 128)
                    | bit(1, 0, 64)
                    | bit(2, 0, 32)
                    | bit(2, 1, 16)
                    | bit(2, 2, 8)
                    | bit(1, 2, 4)
                    | bit(0, 2, 2)
                    | bit(0, 1, 1);
                let subset = &self.subsets[s.subset];
                if subset[(code >> 5) as usize] & (1 << (code & 31)) != 0 { s.left } else { s.right }
            }),
        }
    }

    fn stages_pass(&self, leaf: impl Fn(&Stump) -> f32) -> i32 {
        for (i, st) in self.stages.iter().enumerate() {
            let total: f64 = self.stumps[st.first..st.first + st.count].iter().map(|s| f64::from(leaf(s))).sum();
            if total < f64::from(st.threshold) {
                return -(i as i32);
            }
        }
        1
    }
}

/// OpenCV's `cvRound` (round half to even).
fn round(v: f64) -> u32 {
    v.round_ties_even().max(0.0) as u32
}

fn round_f32(v: f32) -> u32 {
    v.round_ties_even().max(0.0) as u32
}

/// One pyramid level: the resized image's integral images, `(w + 1) × (h + 1)`.
#[derive(Debug, Default)]
struct Level {
    w: u32,
    h: u32,
    pixels: Vec<u8>,
    sum: Vec<i32>,
    sq: Vec<u32>,
}

impl Level {
    fn build(&mut self, src: &GrayImage, w: u32, h: u32, squares: bool) {
        self.w = w;
        self.h = h;
        resize_bilinear(src, w, h, &mut self.pixels);
        let stride = (w + 1) as usize;
        self.sum.clear();
        self.sum.resize(stride * (h + 1) as usize, 0);
        self.sq.clear();
        if squares {
            self.sq.resize(stride * (h + 1) as usize, 0);
        }
        for y in 0..h as usize {
            let (mut row, mut row_sq) = (0i32, 0u32);
            for x in 0..w as usize {
                let p = self.pixels[y * w as usize + x];
                row += i32::from(p);
                let i = (y + 1) * stride + x + 1;
                self.sum[i] = self.sum[i - stride] + row;
                if squares {
                    row_sq = row_sq.wrapping_add(u32::from(p) * u32::from(p));
                    self.sq[i] = self.sq[i - stride].wrapping_add(row_sq);
                }
            }
        }
    }
}

/// Bilinear resize, bit-exact with OpenCV's `INTER_LINEAR_EXACT` for 8-bit images (what its
/// cascade detector's pyramid matches): pixel centres aligned, source positions in f64,
/// 8-bit fixed-point weights, one rounding at the end.
pub fn resize_bilinear(src: &GrayImage, dw: u32, dh: u32, out: &mut Vec<u8>) {
    let (sw, sh) = src.dimensions();
    let coeffs = |dn: u32, sn: u32| -> Vec<(usize, u32, u32)> {
        let scale = f64::from(sn) / f64::from(dn);
        (0..dn)
            .map(|d| {
                let f = scale * (f64::from(d) + 0.5) - 0.5;
                let s = f.floor();
                if s < 0.0 {
                    (0, 256, 0)
                } else if s >= f64::from(sn) - 1.0 {
                    (sn as usize - 1, 256, 0)
                } else {
                    let c1 = ((f - s) * 256.0).round_ties_even() as u32;
                    (s as usize, 256 - c1, c1)
                }
            })
            .collect()
    };
    let (cx, cy) = (coeffs(dw, sw), coeffs(dh, sh));
    let raw = src.as_raw();
    let row = |sy: usize, buf: &mut Vec<u32>| {
        buf.clear();
        let r = &raw[sy * sw as usize..(sy + 1) * sw as usize];
        buf.extend(cx.iter().map(|&(sx, a0, a1)| {
            let next = r[(sx + 1).min(sw as usize - 1)];
            u32::from(r[sx]) * a0 + u32::from(next) * a1
        }));
    };
    out.clear();
    out.reserve((dw * dh) as usize);
    let (mut r0, mut r1) = (Vec::new(), Vec::new());
    for &(sy, b0, b1) in &cy {
        row(sy, &mut r0);
        row((sy + 1).min(sh as usize - 1), &mut r1);
        out.extend(r0.iter().zip(&r1).map(|(&s0, &s1)| ((s0 * b0 + s1 * b1 + (1 << 15)) >> 16).min(255) as u8));
    }
}

/// OpenCV's `groupRectangles(rects, weights, group_threshold, eps)`: cluster similar rectangles,
/// average each cluster of more than `group_threshold`, drop clusters inside a stronger one; each
/// kept rectangle comes with the number of rectangles in its cluster (OpenCV's `weights`).
pub fn group_rectangles(rects: &[Rect], group_threshold: usize, eps: f64) -> Vec<(Rect, usize)> {
    if group_threshold == 0 || rects.is_empty() {
        return rects.iter().map(|&r| (r, 1)).collect();
    }
    let similar = |a: &Rect, b: &Rect| {
        let delta = eps * f64::from(a.w.min(b.w) + a.h.min(b.h)) * 0.5;
        let d = |p: u32, q: u32| f64::from(p.abs_diff(q));
        d(a.x, b.x) <= delta
            && d(a.y, b.y) <= delta
            && d(a.x + a.w, b.x + b.w) <= delta
            && d(a.y + a.h, b.y + b.h) <= delta
    };
    // Union-find over the similarity relation (cv::partition).
    let mut parent: Vec<usize> = (0..rects.len()).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for i in 0..rects.len() {
        for j in 0..i {
            if similar(&rects[i], &rects[j]) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a] = b;
                }
            }
        }
    }
    let mut classes: Vec<(usize, [u64; 4], usize)> = Vec::new(); // (root, sums, count)
    for (i, r) in rects.iter().enumerate() {
        let root = find(&mut parent, i);
        let k = match classes.iter().position(|c| c.0 == root) {
            Some(k) => k,
            None => {
                classes.push((root, [0; 4], 0));
                classes.len() - 1
            }
        };
        let c = &mut classes[k];
        for (s, v) in c.1.iter_mut().zip([r.x, r.y, r.w, r.h]) {
            *s += u64::from(v);
        }
        c.2 += 1;
    }
    let avg: Vec<(Rect, usize)> = classes
        .iter()
        .map(|(_, s, n)| {
            let k = 1.0f32 / *n as f32;
            let a = |v: u64| (v as f32 * k).round_ties_even() as u32;
            (Rect { x: a(s[0]), y: a(s[1]), w: a(s[2]), h: a(s[3]) }, *n)
        })
        .collect();
    let mut out = Vec::new();
    for (i, &(r1, n1)) in avg.iter().enumerate() {
        if n1 <= group_threshold {
            continue;
        }
        let inside_stronger = avg.iter().enumerate().any(|(j, &(r2, n2))| {
            if j == i || n2 <= group_threshold {
                return false;
            }
            let (dx, dy) = ((f64::from(r2.w) * eps).round() as i64, (f64::from(r2.h) * eps).round() as i64);
            let (x1, y1, x2, y2) = (i64::from(r1.x), i64::from(r1.y), i64::from(r2.x), i64::from(r2.y));
            x1 >= x2 - dx
                && y1 >= y2 - dy
                && x1 + i64::from(r1.w) <= x2 + i64::from(r2.w) + dx
                && y1 + i64::from(r1.h) <= y2 + i64::from(r2.h) + dy
                && (n2 > n1.max(3) || n1 < 3)
        });
        if !inside_stronger {
            out.push((r1, n1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_averages_clusters_and_drops_weak_ones() {
        let r = |x, y, s| Rect { x, y, w: s, h: s };
        let rects =
            [r(100, 100, 50), r(102, 101, 52), r(99, 98, 48), r(101, 100, 50), r(300, 300, 40), r(301, 300, 40)];
        let g = group_rectangles(&rects, 3, 0.2);
        assert_eq!(g, vec![(r(100, 100, 50), 4)]);
        assert_eq!(group_rectangles(&rects, 1, 0.2).len(), 2);
        // A weak cluster inside a stronger one is dropped.
        let mut nested = rects[..4].to_vec();
        nested.extend([r(110, 110, 20), r(111, 110, 20)]);
        assert_eq!(group_rectangles(&nested, 1, 0.2), vec![(r(100, 100, 50), 4)]);
    }

    #[test]
    fn resize_keeps_flat_images_flat_and_halves_ramps() {
        let flat = GrayImage::from_pixel(40, 30, image::Luma([77]));
        let mut out = Vec::new();
        resize_bilinear(&flat, 17, 11, &mut out);
        assert!(out.iter().all(|&v| v == 77));
        let ramp = GrayImage::from_fn(64, 4, |x, _| image::Luma([(x * 4) as u8]));
        resize_bilinear(&ramp, 32, 2, &mut out);
        // Downscaling by 2 samples between pixel pairs: (4·2x + 4·(2x+1)) / 2.
        for (x, &v) in out.iter().enumerate().take(31) {
            assert!((i32::from(v) - (8 * x as i32 + 2)).abs() <= 1, "{x}: {v}");
        }
    }

    #[test]
    fn bad_cascades_are_clear_errors() {
        for (xml, needle) in [
            ("<opencv_storage></opencv_storage>", "no <cascade>"),
            ("not xml <", "not XML"),
            (
                "<opencv_storage><cascade><stageType>BOOST</stageType><featureType>HOG</featureType><height>24</height><width>24</width></cascade></opencv_storage>",
                "HOG",
            ),
        ] {
            let e = Cascade::parse(xml, "c.xml").unwrap_err().to_string();
            assert!(e.contains("c.xml") && e.contains(needle), "{e}");
        }
    }
}
