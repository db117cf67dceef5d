//! 68-point face landmarks with dlib's shape predictor files (Kazemi & Sullivan 2014, an ensemble
//! of regression trees), e.g. `shape_predictor_68_face_landmarks.dat` (iBUG 300-W numbering, the
//! same as DAIC-WOZ's CLNF files).
//!
//! The reader decodes dlib's own serialisation (variable-length integers; floats as an integer
//! mantissa and exponent); the evaluator follows dlib's `shape_predictor::operator()`: start from
//! the mean shape in the face box's unit square, and at each cascade level sample pixel
//! intensities at anchor-relative offsets (moved by the similarity transform from the mean
//! shape to the current one), walk every tree with pixel-difference splits and add its leaf.
//!
//! Two in-memory forms of the leaves, which are nearly all of the model (68 points × 2 × 4
//! bytes in each of 15 × 500 × 16 leaves: 65 MB of a 100 MB file): [`LeafPrecision::Exact`]
//! keeps dlib's f32 values, [`LeafPrecision::Int8`] keeps each leaf as i8 with a scale of its
//! own (16 MB; quantised while reading, so the f32 form never exists in memory). The compact
//! form is what a device runs: its landmarks differ from dlib's by a small fraction of a pixel
//! (`vision/tests/it/dlib.rs` measures it).
//!
//! Hand-written: no Rust crate reads dlib's model files.

use std::io::Read;
use std::path::Path;

use image::GrayImage;

use crate::{Rect, VisionError};

#[derive(Debug, Clone)]
struct Tree {
    /// (idx1, idx2, threshold), heap order: children of `i` are `2i+1` (left) and `2i+2`.
    splits: Vec<(u32, u32, f32)>,
    /// Index of this tree's leaf 0 in `ShapePredictor::leaves`.
    leaves_at: usize,
}

#[derive(Debug, Clone)]
struct Level {
    trees: Vec<Tree>,
    anchors: Vec<usize>,
    deltas: Vec<[f32; 2]>,
}

/// How the leaves are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeafPrecision {
    /// dlib's f32 values, as read: the landmarks equal dlib's.
    Exact,
    /// Each leaf as i8 with its own f32 scale (largest magnitude / 127): a quarter of the
    /// memory.
    #[default]
    Int8,
}

#[derive(Debug, Clone)]
enum Leaves {
    Exact(Vec<f32>),
    /// Leaf `j` is `q[j·len..(j+1)·len] · scale[j]`.
    Int8 {
        q: Vec<i8>,
        scale: Vec<f32>,
    },
}

impl Leaves {
    fn push(&mut self, v: &[f32]) {
        match self {
            Leaves::Exact(all) => all.extend_from_slice(v),
            Leaves::Int8 { q, scale } => {
                let s = v.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
                let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
                q.extend(v.iter().map(|x| (x * inv).round().clamp(-127.0, 127.0) as i8));
                scale.push(s);
            }
        }
    }

    /// Adds leaf `j` (of `len` values) to `shape`.
    fn add(&self, j: usize, shape: &mut [f32]) {
        let len = shape.len();
        match self {
            Leaves::Exact(all) => {
                for (s, d) in shape.iter_mut().zip(&all[j * len..(j + 1) * len]) {
                    *s += d;
                }
            }
            Leaves::Int8 { q, scale } => {
                let k = scale[j];
                for (s, d) in shape.iter_mut().zip(&q[j * len..(j + 1) * len]) {
                    *s += k * f32::from(*d);
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Leaves::Exact(all) => all.len() * 4,
            Leaves::Int8 { q, scale } => q.len() + scale.len() * 4,
        }
    }
}

/// A loaded shape predictor.
#[derive(Debug, Clone)]
pub struct ShapePredictor {
    initial: Vec<f32>,
    levels: Vec<Level>,
    leaves: Leaves,
}

/// dlib's serialised stream.
struct Reader<R> {
    r: R,
    origin: String,
}

impl<R: Read> Reader<R> {
    fn err(&self, detail: impl Into<String>) -> VisionError {
        VisionError::Model { path: self.origin.clone(), detail: detail.into() }
    }

    fn byte(&mut self) -> Result<u8, VisionError> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b).map_err(|e| VisionError::Malformed {
            path: self.origin.clone(),
            what: "truncated",
            source: e.into(),
        })?;
        Ok(b[0])
    }

    /// dlib `pack_int`: a byte with the length (low 4 bits) and sign (0x80), then little-endian bytes.
    fn int(&mut self) -> Result<i64, VisionError> {
        let head = self.byte()?;
        let (len, neg) = (head & 0x0F, head & 0x80 != 0);
        if len == 0 || len > 8 || head & 0x70 != 0 {
            return Err(self.err(format!("bad integer header {head:#04x}")));
        }
        let mut v: u64 = 0;
        for i in 0..len {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        let v = i64::try_from(v).map_err(|_| self.err("integer out of range"))?;
        Ok(if neg { -v } else { v })
    }

    fn count(&mut self, limit: usize, what: &str) -> Result<usize, VisionError> {
        let n = self.int()?;
        usize::try_from(n).ok().filter(|&n| n <= limit).ok_or_else(|| self.err(format!("implausible {what} count {n}")))
    }

    /// dlib floats: mantissa (int64) and exponent (int16), value = mantissa · 2^exponent.
    fn float(&mut self) -> Result<f32, VisionError> {
        let mantissa = self.int()?;
        let exponent = self.int()?;
        if !(-1100..=1100).contains(&exponent) {
            return Err(self.err(format!("non-finite or corrupt float (exponent {exponent})")));
        }
        Ok((mantissa as f64 * 2f64.powi(exponent as i32)) as f32)
    }

    /// `matrix<float,0,1>`: −rows, −cols (dlib writes them negated), then the values.
    fn column(&mut self) -> Result<Vec<f32>, VisionError> {
        let (rows, cols) = (self.int()?.unsigned_abs(), self.int()?.unsigned_abs());
        if cols != 1 || rows > 10_000 {
            return Err(self.err(format!("expected a column vector, found {rows}×{cols}")));
        }
        (0..rows).map(|_| self.float()).collect()
    }
}

impl ShapePredictor {
    /// Loads a model file with dlib's own f32 leaves.
    pub fn load(path: &Path) -> Result<ShapePredictor, VisionError> {
        ShapePredictor::load_with(path, LeafPrecision::Exact)
    }

    /// Loads a model file, keeping its leaves as `precision` says.
    pub fn load_with(path: &Path, precision: LeafPrecision) -> Result<ShapePredictor, VisionError> {
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| VisionError::Malformed {
            path: origin.clone(),
            what: "cannot be read",
            source: e.into(),
        })?;
        ShapePredictor::read_with(std::io::BufReader::with_capacity(1 << 20, file), &origin, precision)
    }

    /// Reads a serialised `dlib::shape_predictor` (version 1) with exact leaves.
    pub fn read<R: Read>(r: R, origin: &str) -> Result<ShapePredictor, VisionError> {
        ShapePredictor::read_with(r, origin, LeafPrecision::Exact)
    }

    /// Reads a serialised `dlib::shape_predictor` (version 1).
    pub fn read_with<R: Read>(r: R, origin: &str, precision: LeafPrecision) -> Result<ShapePredictor, VisionError> {
        let mut rd = Reader { r, origin: origin.to_owned() };
        let version = rd.int()?;
        if version != 1 {
            return Err(rd.err(format!("shape predictor version {version}; dlib writes version 1")));
        }
        let initial = rd.column()?;
        if initial.is_empty() || initial.len() % 2 != 0 {
            return Err(rd.err("initial shape must hold x,y pairs"));
        }
        let points = initial.len() / 2;
        let mut leaves = match precision {
            LeafPrecision::Exact => Leaves::Exact(Vec::new()),
            LeafPrecision::Int8 => Leaves::Int8 { q: Vec::new(), scale: Vec::new() },
        };
        let mut n_leaves_read = 0usize;
        let n_levels = rd.count(1_000, "cascade level")?;
        let mut levels = Vec::with_capacity(n_levels);
        for _ in 0..n_levels {
            let n_trees = rd.count(100_000, "tree")?;
            let mut trees = Vec::with_capacity(n_trees);
            for _ in 0..n_trees {
                let n_splits = rd.count(1 << 16, "split")?;
                let mut splits = Vec::with_capacity(n_splits);
                for _ in 0..n_splits {
                    let (a, b) = (rd.int()?, rd.int()?);
                    let t = rd.float()?;
                    splits.push((a as u32, b as u32, t));
                }
                let n_leaves = rd.count(1 << 17, "leaf")?;
                if n_leaves != n_splits + 1 {
                    return Err(
                        rd.err(format!("a tree with {n_splits} splits needs {} leaves, has {n_leaves}", n_splits + 1))
                    );
                }
                let leaves_at = n_leaves_read;
                for _ in 0..n_leaves {
                    let v = rd.column()?;
                    if v.len() != 2 * points {
                        return Err(rd.err("leaf size differs from the shape size"));
                    }
                    leaves.push(&v);
                }
                n_leaves_read += n_leaves;
                trees.push(Tree { splits, leaves_at });
            }
            levels.push(Level { trees, anchors: Vec::new(), deltas: Vec::new() });
        }
        if rd.count(1_000, "anchor list")? != n_levels {
            return Err(rd.err("anchor lists do not match the cascade levels"));
        }
        for level in &mut levels {
            let n = rd.count(1 << 16, "anchor")?;
            level.anchors = (0..n).map(|_| rd.int().map(|v| v as usize)).collect::<Result<_, _>>()?;
        }
        if rd.count(1_000, "delta list")? != n_levels {
            return Err(rd.err("delta lists do not match the cascade levels"));
        }
        for level in &mut levels {
            let n = rd.count(1 << 16, "delta")?;
            level.deltas = (0..n).map(|_| Ok([rd.float()?, rd.float()?])).collect::<Result<_, VisionError>>()?;
            if level.deltas.len() != level.anchors.len() || level.anchors.iter().any(|&a| a >= points) {
                return Err(rd.err("feature pixels and anchors disagree"));
            }
            let n_pixels = level.anchors.len() as u32;
            if level.trees.iter().flat_map(|t| &t.splits).any(|s| s.0 >= n_pixels || s.1 >= n_pixels) {
                return Err(rd.err("a split reads a feature pixel that does not exist"));
            }
        }
        Ok(ShapePredictor { initial, levels, leaves })
    }

    pub fn points(&self) -> usize {
        self.initial.len() / 2
    }

    /// The model's mean shape (x, y pairs in units of the face box), where prediction starts.
    pub fn mean_shape(&self) -> &[f32] {
        &self.initial
    }

    /// Memory the leaves take, bytes.
    pub fn leaf_bytes(&self) -> usize {
        self.leaves.bytes()
    }

    /// The landmarks of the face in `rect` (pixel coordinates).
    pub fn predict(&self, img: &GrayImage, rect: &Rect) -> Vec<[f32; 2]> {
        let mut shape = self.initial.clone();
        let mut pixels = Vec::new();
        // dlib's rectangles are inclusive: right = left + width − 1.
        let (l, t) = (rect.x as f32, rect.y as f32);
        let (sx, sy) = ((rect.w.max(1) - 1) as f32, (rect.h.max(1) - 1) as f32);
        let (w, h) = (img.width() as i64, img.height() as i64);
        for level in &self.levels {
            let [a, b] = similarity(&self.initial, &shape);
            pixels.clear();
            pixels.extend(level.anchors.iter().zip(&level.deltas).map(|(&k, d)| {
                let u = a * d[0] - b * d[1] + shape[2 * k];
                let v = b * d[0] + a * d[1] + shape[2 * k + 1];
                // dlib's point_transform_affine: the box's map in f64, then floor(x + 0.5).
                let px = (f64::from(l) + f64::from(u) * f64::from(sx) + 0.5).floor() as i64;
                let py = (f64::from(t) + f64::from(v) * f64::from(sy) + 0.5).floor() as i64;
                if (0..w).contains(&px) && (0..h).contains(&py) {
                    f32::from(img.get_pixel(px as u32, py as u32).0[0])
                } else {
                    0.0
                }
            }));
            for tree in &level.trees {
                let mut i = 0;
                while i < tree.splits.len() {
                    let (p, q, th) = tree.splits[i];
                    i = if pixels[p as usize] - pixels[q as usize] > th { 2 * i + 1 } else { 2 * i + 2 };
                }
                self.leaves.add(tree.leaves_at + i - tree.splits.len(), &mut shape);
            }
        }
        shape.chunks_exact(2).map(|p| [l + p[0] * sx, t + p[1] * sy]).collect()
    }
}

/// The rotation-and-scale part `[[a, −b], [b, a]]` of the least-squares similarity transform
/// from shape `from` to shape `to` (flat x,y lists); dlib's `find_tform_between_shapes`, which
/// computes it in f64 and hands it to the feature-pixel placement as f32: computed in f32 here,
/// the last bit of `a` or `b` could differ and send a tree down another branch.
fn similarity(from: &[f32], to: &[f32]) -> [f32; 2] {
    let n = (from.len() / 2) as f64;
    let mean = |s: &[f32]| {
        let (mut x, mut y) = (0.0f64, 0.0f64);
        for p in s.chunks_exact(2) {
            x += f64::from(p[0]);
            y += f64::from(p[1]);
        }
        (x / n, y / n)
    };
    let ((fx, fy), (tx, ty)) = (mean(from), mean(to));
    let (mut dot, mut cross, mut norm) = (0.0f64, 0.0f64, 0.0f64);
    for (p, q) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        let (ax, ay) = (f64::from(p[0]) - fx, f64::from(p[1]) - fy);
        let (bx, by) = (f64::from(q[0]) - tx, f64::from(q[1]) - ty);
        dot += ax * bx + ay * by;
        cross += ax * by - ay * bx;
        norm += ax * ax + ay * ay;
    }
    if norm <= 0.0 { [1.0, 0.0] } else { [(dot / norm) as f32, (cross / norm) as f32] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(v: i64, out: &mut Vec<u8>) {
        let (neg, mut m) = (v < 0, v.unsigned_abs());
        let mut bytes = Vec::new();
        loop {
            bytes.push((m & 0xFF) as u8);
            m >>= 8;
            if m == 0 {
                break;
            }
        }
        out.push(bytes.len() as u8 | if neg { 0x80 } else { 0 });
        out.extend(bytes);
    }

    fn float(v: f32, out: &mut Vec<u8>) {
        // Exact for these test values: v = mantissa · 2^-20.
        pack((f64::from(v) * f64::from(1 << 20)).round() as i64, out);
        pack(-20, out);
    }

    /// A two-point model with one level and one depth-1 tree: if pixel 0 is brighter than
    /// pixel 1 by more than 10, both points move right by 0.25, else left by 0.25.
    fn tiny_model() -> Vec<u8> {
        let mut b = Vec::new();
        pack(1, &mut b); // version
        pack(-4, &mut b); // initial shape: 4×1
        pack(-1, &mut b);
        for v in [0.25f32, 0.5, 0.75, 0.5] {
            float(v, &mut b);
        }
        pack(1, &mut b); // one level
        pack(1, &mut b); // one tree
        pack(1, &mut b); // one split
        pack(0, &mut b);
        pack(1, &mut b);
        float(10.0, &mut b);
        pack(2, &mut b); // two leaves
        for dx in [0.25f32, -0.25] {
            pack(-4, &mut b);
            pack(-1, &mut b);
            for v in [dx, 0.0, dx, 0.0] {
                float(v, &mut b);
            }
        }
        pack(1, &mut b); // anchors
        pack(2, &mut b);
        pack(0, &mut b);
        pack(1, &mut b);
        pack(1, &mut b); // deltas
        pack(2, &mut b);
        for v in [0.0f32, 0.0, 0.0, 0.0] {
            float(v, &mut b);
        }
        b
    }

    #[test]
    fn reads_dlib_serialisation_and_walks_trees() {
        let m = ShapePredictor::read(&tiny_model()[..], "tiny.dat").expect("reads");
        assert_eq!(m.points(), 2);
        let rect = Rect { x: 0, y: 0, w: 101, h: 101 };
        // Point 0 samples (25, 50), point 1 samples (75, 50).
        let bright_left = GrayImage::from_fn(101, 101, |x, _| image::Luma([if x < 50 { 200 } else { 20 }]));
        let p = m.predict(&bright_left, &rect);
        assert_eq!(p, vec![[50.0, 50.0], [100.0, 50.0]]);
        let bright_right = GrayImage::from_fn(101, 101, |x, _| image::Luma([if x < 50 { 20 } else { 200 }]));
        assert_eq!(m.predict(&bright_right, &rect), vec![[0.0, 50.0], [50.0, 50.0]]);
    }

    #[test]
    fn compact_leaves_move_points_as_the_exact_ones_do() {
        let exact = ShapePredictor::read(&tiny_model()[..], "tiny.dat").expect("reads");
        let compact = ShapePredictor::read_with(&tiny_model()[..], "tiny.dat", LeafPrecision::Int8).expect("reads");
        assert_eq!(exact.leaf_bytes(), 2 * 4 * 4);
        assert_eq!(compact.leaf_bytes(), 2 * 4 + 2 * 4);
        let rect = Rect { x: 0, y: 0, w: 101, h: 101 };
        let bright_left = GrayImage::from_fn(101, 101, |x, _| image::Luma([if x < 50 { 200 } else { 20 }]));
        for (e, c) in exact.predict(&bright_left, &rect).iter().zip(compact.predict(&bright_left, &rect)) {
            assert!((e[0] - c[0]).abs() < 1e-4 && (e[1] - c[1]).abs() < 1e-4, "{e:?} {c:?}");
        }
        // Values off the i8 grid round to the nearest step of their leaf's scale.
        let mut leaves = Leaves::Int8 { q: Vec::new(), scale: Vec::new() };
        leaves.push(&[1.0, 0.3, -0.5, 0.0]);
        leaves.push(&[0.0; 4]);
        let mut shape = [0.0f32; 4];
        leaves.add(0, &mut shape);
        for (got, want) in shape.iter().zip([1.0f32, 0.3, -0.5, 0.0]) {
            assert!((got - want).abs() <= 0.5 / 127.0, "{shape:?}");
        }
        let before = shape;
        leaves.add(1, &mut shape);
        assert_eq!(shape, before, "an all-zero leaf moves nothing");
    }

    #[test]
    fn damaged_models_are_clear_errors() {
        let good = tiny_model();
        for cut in [0, 1, 10, good.len() / 2, good.len() - 1] {
            let e = ShapePredictor::read(&good[..cut], "cut.dat").unwrap_err().to_string();
            assert!(e.contains("cut.dat"), "{e}");
        }
        let mut wrong = good.clone();
        wrong[1] = 2; // version 2
        assert!(ShapePredictor::read(&wrong[..], "v.dat").unwrap_err().to_string().contains("version"));
    }

    #[test]
    fn similarity_recovers_rotation_and_scale() {
        let from = [0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let (c, s) = (2.0f32 * 0.3f32.cos(), 2.0f32 * 0.3f32.sin());
        let to: Vec<f32> =
            from.chunks_exact(2).flat_map(|p| [c * p[0] - s * p[1] + 5.0, s * p[0] + c * p[1] - 1.0]).collect();
        let [a, b] = similarity(&from, &to);
        assert!((a - c).abs() < 1e-5 && (b - s).abs() < 1e-5, "{a} {b}");
    }
}
