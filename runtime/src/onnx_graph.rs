//! A small writer of ONNX graphs (tract-onnx's protobuf types): initialisers stored as f32, f16
//! or int8, and nodes named by op and counter. The MIMML export and the MiniLM text encoder build
//! their graphs with it. Written by hand because no crate writes ONNX graphs from Rust.

use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};
use tract_onnx::prelude::f16;

/// The ONNX opset every graph written here declares.
pub const OPSET: i64 = 17;

/// How weights are stored. Computation is f32 in every variant: f16 weights are cast up at
/// load, int8 weights (symmetric, per tensor) go through `DequantizeLinear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    F32,
    F16,
    Int8,
}

impl Quantization {
    pub fn name(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::F16 => "f16",
            Quantization::Int8 => "int8",
        }
    }

    pub fn parse(s: &str) -> Option<Quantization> {
        [Quantization::F32, Quantization::F16, Quantization::Int8].into_iter().find(|q| q.name() == s)
    }
}

/// Tensors smaller than this stay f32 (biases, normalisation constants, scalars).
pub const QUANTIZE_MIN: usize = 64;

/// An integer attribute.
pub fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Ints as i32, ints: ints.to_vec(), ..Default::default() }
}

/// A float attribute.
pub fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

/// A string attribute.
pub fn attr_s(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// A graph being written: its nodes and initialisers so far.
#[derive(Debug)]
pub struct Graph {
    /// The nodes, in order.
    pub nodes: Vec<NodeProto>,
    /// The initialisers (weights and constants).
    pub inits: Vec<TensorProto>,
    /// Counter for node names.
    pub n: usize,
    /// How weights are stored.
    pub quantization: Quantization,
}

impl Graph {
    /// An empty graph storing weights as `quantization` says.
    pub fn new(quantization: Quantization) -> Graph {
        Graph { nodes: Vec::new(), inits: Vec::new(), n: 0, quantization }
    }

    /// The finished model: this graph as `name` with its inputs and outputs, opset [`OPSET`].
    pub fn into_model(
        self,
        name: &str,
        doc: String,
        input: Vec<ValueInfoProto>,
        output: Vec<ValueInfoProto>,
    ) -> ModelProto {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
            producer_name: "mimml".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            doc_string: doc,
            graph: Some(GraphProto {
                name: name.into(),
                node: self.nodes,
                initializer: self.inits,
                input,
                output,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// An f32 constant, stored as the graph's quantisation says; returns the name of the f32
    /// value nodes consume.
    pub fn f32(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len(), "{name}");
        let dims64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let q = if data.len() < QUANTIZE_MIN { Quantization::F32 } else { self.quantization };
        match q {
            Quantization::F32 => {
                self.inits.push(TensorProto {
                    name: name.into(),
                    dims: dims64,
                    data_type: DataType::Float as i32,
                    raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..Default::default()
                });
            }
            Quantization::F16 => {
                let stored = format!("h{}", self.inits.len());
                self.inits.push(TensorProto {
                    name: stored.clone(),
                    dims: dims64,
                    data_type: DataType::Float16 as i32,
                    raw_data: data.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes()).collect(),
                    ..Default::default()
                });
                self.named("Cast", &[&stored], name, vec![attr_i("to", DataType::Float as i64)]);
            }
            Quantization::Int8 => {
                let max = data.iter().fold(0f32, |m, v| m.max(v.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                // Short names: at this size the graph's text is a noticeable part of the file.
                let stored = format!("q{}", self.inits.len());
                self.inits.push(TensorProto {
                    name: stored.clone(),
                    dims: dims64,
                    data_type: DataType::Int8 as i32,
                    raw_data: data.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8 as u8).collect(),
                    ..Default::default()
                });
                let s = format!("s{}", self.inits.len() + 1);
                self.inits.push(TensorProto {
                    name: s.clone(),
                    data_type: DataType::Float as i32,
                    raw_data: scale.to_le_bytes().to_vec(),
                    ..Default::default()
                });
                // One zero point serves every tensor (symmetric quantisation).
                const ZERO: &str = "int8.zero";
                if !self.inits.iter().any(|t| t.name == ZERO) {
                    self.inits.push(TensorProto {
                        name: ZERO.into(),
                        data_type: DataType::Int8 as i32,
                        raw_data: vec![0],
                        ..Default::default()
                    });
                }
                self.named("DequantizeLinear", &[&stored, &s, ZERO], name, vec![]);
            }
        }
        name.into()
    }

    /// Whether an initialiser is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.inits.iter().any(|t| t.name == name)
    }

    pub fn i64s(&mut self, name: &str, data: &[i64]) -> String {
        self.inits.push(TensorProto {
            name: name.into(),
            dims: vec![data.len() as i64],
            data_type: DataType::Int64 as i32,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name.into()
    }

    pub fn scalar(&mut self, name: &str, v: f32) -> String {
        self.f32(name, &[], vec![v])
    }

    /// Adds a node with one output (named after the op and a counter); returns the output.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        self.n += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.n);
        self.named(op, inputs, &out, attrs);
        out
    }

    pub fn named(&mut self, op: &str, inputs: &[&str], out: &str, attrs: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            attribute: attrs,
            ..Default::default()
        });
    }
}

/// An f32 graph input or output; `Ok` dims are fixed, `Err` ones named (dynamic).
pub fn value_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    typed_value_info(name, DataType::Float, dims)
}

/// A graph input or output of element type `elem`; dims as in [`value_info`].
pub fn typed_value_info(name: &str, elem: DataType, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Ok(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                Err(p) => tensor_shape_proto::dimension::Value::DimParam((*p).into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A row-major `[r, c]` matrix transposed to `[c, r]`.
pub fn transpose2(shape: &[usize], v: &[f32]) -> Vec<f32> {
    let (r, c) = (shape[0], shape[1]);
    let mut out = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    out
}
