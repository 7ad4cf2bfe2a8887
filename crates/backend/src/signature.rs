//! Model signatures: the names, dtypes and shapes of a model's inputs and outputs.

use crate::DType;

/// One dimension of a declared shape: fixed, or free (a named or unnamed dynamic axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// Any size; decided per request.
    Dynamic,
}

impl Dim {
    /// The Open Inference Protocol's integer form: the size, or -1 for a dynamic dimension.
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Fixed(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Self::Dynamic => -1,
        }
    }

    /// Whether a concrete size fits this dimension.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Self::Fixed(m) => m == n,
            Self::Dynamic => true,
        }
    }
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name in the model graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Declared shape; dynamic dimensions are [`Dim::Dynamic`].
    pub shape: Vec<Dim>,
}

impl TensorSpec {
    /// Whether the first dimension can hold any number of rows, so requests can be stacked into a batch.
    pub fn is_batchable(&self) -> bool {
        matches!(self.shape.first(), Some(Dim::Dynamic))
    }

    /// Checks a concrete shape against the declared one.
    ///
    /// # Errors
    /// A human-readable reason when rank or a fixed dimension differs.
    pub fn check_shape(&self, shape: &[usize]) -> Result<(), String> {
        if shape.len() != self.shape.len() {
            return Err(format!(
                "expected rank {} (shape {}), got shape {shape:?}",
                self.shape.len(),
                self.shape_string()
            ));
        }
        for (i, (dim, &n)) in self.shape.iter().zip(shape).enumerate() {
            if !dim.accepts(n) {
                return Err(format!(
                    "dimension {i} must be {} (shape {}), got shape {shape:?}",
                    dim.as_i64(),
                    self.shape_string()
                ));
            }
        }
        Ok(())
    }

    /// The declared shape as text, `-1` for dynamic dimensions, e.g. `[-1, 64]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.as_i64().to_string()).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// Everything a caller needs to know to build inputs and read outputs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Signature {
    /// Inputs, in the order [`crate::Session::run`] takes them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order [`crate::Session::run`] returns them.
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// Whether every input has a dynamic first dimension, so several requests can run as one batch.
    pub fn is_batchable(&self) -> bool {
        !self.inputs.is_empty() && self.inputs.iter().all(TensorSpec::is_batchable)
    }

    /// Finds an input by name.
    pub fn input(&self, name: &str) -> Option<(usize, &TensorSpec)> {
        self.inputs.iter().enumerate().find(|(_, s)| s.name == name)
    }
}
