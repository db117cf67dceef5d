//! A reader of CTranslate2's `model.bin`, the weights file faster-whisper and the other
//! CTranslate2 front-ends load.
//!
//! The layout is the one `python/ctranslate2/specs/model_spec.py` (`ModelSpec._serialize`) writes
//! and `src/models/model.cc` reads, all little-endian:
//!
//! ```text
//! u32 binary version (6)          string spec name ("WhisperSpec")     u32 spec revision
//! u32 variable count, then per variable:
//!     string name ("encoder/conv1/weight")   u8 rank   u32 × rank shape
//!     u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)   u32 byte count   bytes
//! u32 alias count, then per alias: string alias, string target
//! string = u16 length including a closing NUL, the UTF-8 bytes, the NUL
//! ```
//!
//! Written by hand: no Rust crate reads this format.

use std::collections::HashMap;

use tract_onnx::prelude::f16;

/// The binary versions this reader understands (CTranslate2 writes 6 today; 5 only lacks
/// nothing this reader uses).
pub const BINARY_VERSIONS: std::ops::RangeInclusive<u32> = 5..=6;

/// Why a `model.bin` was refused.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("model.bin ends at byte {at} inside {what}")]
    Truncated { at: usize, what: &'static str },
    #[error("model.bin has binary version {0}; this reader knows {BINARY_VERSIONS:?}")]
    Version(u32),
    #[error("model.bin: {what} at byte {at} is not valid")]
    Corrupt { at: usize, what: String },
    #[error("model.bin has {0} bytes after its last alias")]
    Trailing(usize),
    #[error("model.bin has no variable {0:?}")]
    Missing(String),
    #[error("model.bin variable {name}: {detail}")]
    Variable { name: String, detail: String },
}

/// The element types CTranslate2 stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One stored variable: its shape, element type and bytes (a range of the file).
#[derive(Debug, Clone)]
pub struct Variable {
    pub shape: Vec<usize>,
    pub dtype: DType,
    range: std::ops::Range<usize>,
}

/// A parsed `model.bin`: the spec it was written from and its variables, borrowed from the bytes.
#[derive(Debug)]
pub struct Ct2Model<'a> {
    /// The specification's name, e.g. `WhisperSpec`.
    pub spec: String,
    /// The specification's revision (the weights' layout version).
    pub revision: u32,
    bytes: &'a [u8],
    vars: HashMap<String, Variable>,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Ct2Error> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or(Ct2Error::Truncated { at: self.b.len(), what })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, Ct2Error> {
        let s = self.take(2, what)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, Ct2Error> {
        let s = self.take(4, what)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn string(&mut self, what: &'static str) -> Result<String, Ct2Error> {
        let at = self.at;
        let n = self.u16(what)? as usize;
        let s = self.take(n, what)?;
        match s.split_last() {
            Some((0, text)) => std::str::from_utf8(text)
                .map(str::to_owned)
                .map_err(|_| Ct2Error::Corrupt { at, what: format!("{what} (not UTF-8)") }),
            _ => Err(Ct2Error::Corrupt { at, what: format!("{what} (no closing NUL)") }),
        }
    }
}

impl<'a> Ct2Model<'a> {
    /// Parses `bytes`; every length is checked against what is left, so a truncated or corrupt
    /// file is an error, never a panic or a huge allocation.
    pub fn parse(bytes: &'a [u8]) -> Result<Ct2Model<'a>, Ct2Error> {
        let mut c = Cursor { b: bytes, at: 0 };
        let version = c.u32("the binary version")?;
        if !BINARY_VERSIONS.contains(&version) {
            return Err(Ct2Error::Version(version));
        }
        let spec = c.string("the spec name")?;
        let revision = c.u32("the spec revision")?;
        let count = c.u32("the variable count")? as usize;
        let mut vars = HashMap::new();
        for _ in 0..count {
            let at = c.at;
            let name = c.string("a variable name")?;
            let rank = c.u8("a variable rank")? as usize;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(c.u32("a variable shape")? as usize);
            }
            let id = c.u8("a variable dtype")?;
            let dtype =
                DType::from_id(id).ok_or_else(|| Ct2Error::Corrupt { at, what: format!("{name}: dtype {id}") })?;
            let n = c.u32("a variable size")? as usize;
            let elems = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if elems.and_then(|e| e.checked_mul(dtype.size())) != Some(n) {
                return Err(Ct2Error::Corrupt { at, what: format!("{name}: {n} bytes for shape {shape:?} {dtype:?}") });
            }
            let start = c.at;
            c.take(n, "variable data")?;
            if vars.insert(name.clone(), Variable { shape, dtype, range: start..start + n }).is_some() {
                return Err(Ct2Error::Corrupt { at, what: format!("{name} stored twice") });
            }
        }
        let aliases = c.u32("the alias count")? as usize;
        for _ in 0..aliases {
            let at = c.at;
            let alias = c.string("an alias")?;
            let target = c.string("an alias target")?;
            let v = vars
                .get(&target)
                .cloned()
                .ok_or_else(|| Ct2Error::Corrupt { at, what: format!("alias {alias} of missing {target}") })?;
            vars.insert(alias, v);
        }
        if c.at != bytes.len() {
            return Err(Ct2Error::Trailing(bytes.len() - c.at));
        }
        Ok(Ct2Model { spec, revision, bytes, vars })
    }

    /// The variable `name`.
    pub fn variable(&self, name: &str) -> Result<&Variable, Ct2Error> {
        self.vars.get(name).ok_or_else(|| Ct2Error::Missing(name.into()))
    }

    /// Whether `name` is stored.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// The variable `name` as f32 (f32, f16 and bf16 are read; integer weights, i.e. int8
    /// quantised models, are refused), checked to have `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, Ct2Error> {
        let v = self.variable(name)?;
        if v.shape != shape {
            return Err(Ct2Error::Variable {
                name: name.into(),
                detail: format!("shape {:?}, expected {shape:?}", v.shape),
            });
        }
        let b = &self.bytes[v.range.clone()];
        Ok(match v.dtype {
            DType::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            DType::Bf16 => {
                b.chunks_exact(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)).collect()
            }
            other => {
                return Err(Ct2Error::Variable {
                    name: name.into(),
                    detail: format!("{other:?} weights (a quantised model); this reader takes float weights"),
                });
            }
        })
    }

    /// A scalar integer variable (`encoder/num_heads`, `decoder/pre_norm`, ...).
    pub fn int(&self, name: &str) -> Result<i64, Ct2Error> {
        let v = self.variable(name)?;
        let b = &self.bytes[v.range.clone()];
        let bad = || Ct2Error::Variable {
            name: name.into(),
            detail: format!("{:?} {:?} is not a scalar integer", v.shape, v.dtype),
        };
        if !v.shape.is_empty() {
            return Err(bad());
        }
        Ok(match v.dtype {
            DType::I8 => i64::from(b[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    /// A small file as `ModelSpec._serialize` writes it: an f16 matrix, an i16 scalar, an alias.
    fn sample() -> Vec<u8> {
        let mut b = 6u32.to_le_bytes().to_vec();
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        string(&mut b, "decoder/embeddings/weight");
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&3u32.to_le_bytes());
        b.push(4);
        b.extend_from_slice(&12u32.to_le_bytes());
        for v in [1.0f32, -2.0, 0.5, 0.0, 3.25, -0.125] {
            b.extend_from_slice(&f16::from_f32(v).to_le_bytes());
        }
        string(&mut b, "decoder/num_heads");
        b.push(0);
        b.push(2);
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&6i16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        string(&mut b, "decoder/projection/weight");
        string(&mut b, "decoder/embeddings/weight");
        b
    }

    #[test]
    fn variables_scalars_and_aliases_are_read() {
        let b = sample();
        let m = Ct2Model::parse(&b).unwrap();
        assert_eq!((m.spec.as_str(), m.revision), ("WhisperSpec", 3));
        assert_eq!(m.f32("decoder/embeddings/weight", &[2, 3]).unwrap(), [1.0, -2.0, 0.5, 0.0, 3.25, -0.125]);
        assert_eq!(m.f32("decoder/projection/weight", &[2, 3]).unwrap()[4], 3.25);
        assert_eq!(m.int("decoder/num_heads").unwrap(), 6);
        assert!(matches!(m.f32("decoder/embeddings/weight", &[3, 2]), Err(Ct2Error::Variable { .. })));
        assert!(matches!(m.f32("encoder/conv1/weight", &[1]), Err(Ct2Error::Missing(_))));
    }

    #[test]
    fn every_truncation_and_a_bad_size_are_errors_never_panics() {
        let b = sample();
        for n in 0..b.len() {
            assert!(Ct2Model::parse(&b[..n]).is_err(), "cut at {n}");
        }
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(Ct2Model::parse(&long), Err(Ct2Error::Trailing(1))));
        // The byte count of the first variable (12) claims more than its shape holds.
        let at = b.windows(4).position(|w| w == 12u32.to_le_bytes()).unwrap();
        let mut bad = b.clone();
        bad[at] = 200;
        assert!(matches!(Ct2Model::parse(&bad), Err(Ct2Error::Corrupt { .. })));
        let mut version = b;
        version[0] = 9;
        assert!(matches!(Ct2Model::parse(&version), Err(Ct2Error::Version(9))));
    }
}
