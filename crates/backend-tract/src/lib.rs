//! The embedded engine: ONNX models on [tract](https://github.com/sonos/tract), pure Rust, built by
//! `cargo build` alone.
//!
//! tract needs concrete input shapes to optimise a model, and a plan optimised for one shape runs
//! several times faster than one left symbolic, so this backend keeps one optimised plan per concrete
//! set of input shapes ([`TractModel`] shares them between workers) and one run state per plan in each
//! worker's [`TractSession`]. Both caches are bounded.
//!
//! The model's declared signature (names, dtypes, dynamic axes) is read straight from the ONNX graph,
//! so it is known before any shape is chosen.

mod convert;
mod signature;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use oxserve_backend::{
    Backend, BackendError, Device, Dim, LoadedModel, ModelSource, Session, Signature, Tensor,
};
use tract_onnx::prelude::{
    Framework, InferenceFact, InferenceModel, InferenceModelExt, RunOptions, TypedSimplePlan,
    TypedSimpleState,
};

/// Most optimised plans kept per model, and run states per worker; the oldest are dropped past it.
/// Each distinct batch size is one entry, so this covers batch sizes up to this number per shape.
const MAX_CACHED_SHAPES: usize = 64;

/// Input shapes of one call, the key of both caches.
type ShapeKey = Vec<Vec<usize>>;

/// The tract engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct TractBackend;

impl Backend for TractBackend {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn load(&self, source: &ModelSource) -> Result<Arc<dyn LoadedModel>, BackendError> {
        let model = TractModel::load(source)?;
        Ok(Arc::new(model))
    }
}

/// A model loaded in tract, shared by all its workers.
#[derive(Debug, Clone)]
pub struct TractModel {
    inner: Arc<Inner>,
}

/// What [`TractModel`] shares with every [`TractSession`] made from it.
struct Inner {
    path: PathBuf,
    signature: Signature,
    /// The graph as parsed; cloned and given concrete input facts for each new shape.
    inference: InferenceModel,
    /// The same graph parsed without the file's `value_info`, made on first need: some exporters repeat
    /// a symbolic batch axis there that conflicts with a concrete input shape.
    without_value_info: OnceLock<Result<InferenceModel, String>>,
    /// Optimised plans by input shapes. The lock is held only to look up or insert, never to run.
    plans: Mutex<HashMap<ShapeKey, Arc<TypedSimplePlan>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel").field("path", &self.path).finish_non_exhaustive()
    }
}

impl TractModel {
    /// Parses the model, reads its signature and, when only the batch axis is dynamic, optimises the
    /// batch-1 plan so that a model tract cannot run fails here rather than on the first request.
    ///
    /// # Errors
    /// [`BackendError::Load`] for unreadable files and models tract cannot parse or optimise.
    pub fn load(source: &ModelSource) -> Result<Self, BackendError> {
        let path = source.path.clone();
        refuse_gpu(&path, source.device)?;
        let load_err = |e: tract_onnx::prelude::TractError| BackendError::Load {
            path: path.clone(),
            source: format!("{e:#}").into(),
        };
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_path(&path).map_err(load_err)?;
        let signature = signature::from_proto(&proto)
            .map_err(|reason| BackendError::Load { path: path.clone(), source: reason.into() })?;
        let inference = parse(&onnx, &proto, &path).map_err(load_err)?;
        if source.intra_threads.is_some_and(|n| n > 1) {
            tracing::info!(
                path = %path.display(),
                "tract runs each session on one thread; scale with workers instead of intra-op threads"
            );
        }
        let model = Inner {
            path: path.clone(),
            signature,
            inference,
            without_value_info: OnceLock::new(),
            plans: Mutex::new(HashMap::new()),
        };
        if let Some(shapes) = model.warmup_shapes() {
            model.plan(&shapes).map_err(|e| BackendError::Load { path, source: e.into() })?;
        }
        Ok(Self { inner: Arc::new(model) })
    }
}

impl Inner {
    /// Batch-1 shapes when every other dimension is fixed; `None` when a shape would have to be guessed.
    fn warmup_shapes(&self) -> Option<ShapeKey> {
        self.signature
            .inputs
            .iter()
            .map(|spec| {
                spec.shape
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match d {
                        Dim::Fixed(n) => Some(*n),
                        Dim::Dynamic if i == 0 => Some(1),
                        Dim::Dynamic => None,
                    })
                    .collect::<Option<Vec<usize>>>()
            })
            .collect()
    }

    /// The optimised plan for these input shapes, built on first use.
    fn plan(&self, shapes: &ShapeKey) -> Result<Arc<TypedSimplePlan>, String> {
        if let Some(plan) = self.plans.lock().unwrap_or_else(PoisonError::into_inner).get(shapes) {
            return Ok(Arc::clone(plan));
        }
        // Built outside the lock: optimising takes 10–300 ms and other shapes must not wait for it.
        let plan = match self.build_plan(&self.inference, shapes) {
            Ok(plan) => plan,
            Err(first) => {
                let retry = self
                    .without_value_info
                    .get_or_init(|| {
                        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
                        onnx.proto_model_for_path(&self.path)
                            .and_then(|proto| parse(&onnx, &proto, &self.path))
                            .map_err(|e| format!("{e:#}"))
                    })
                    .as_ref()
                    .map_err(|_| first.clone())?;
                self.build_plan(retry, shapes).map_err(|_| first)?
            }
        };
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if plans.len() >= MAX_CACHED_SHAPES {
            plans.clear();
        }
        plans.insert(shapes.clone(), Arc::clone(&plan));
        Ok(plan)
    }

    fn build_plan(
        &self,
        model: &InferenceModel,
        shapes: &ShapeKey,
    ) -> Result<Arc<TypedSimplePlan>, String> {
        let mut model = model.clone();
        for (i, (spec, shape)) in self.signature.inputs.iter().zip(shapes).enumerate() {
            let fact = InferenceFact::dt_shape(convert::datum_type(spec.dtype), shape.clone());
            model = model.with_input_fact(i, fact).map_err(|e| format!("{e:#}"))?;
        }
        model
            .into_optimized()
            .and_then(|m| m.into_runnable_with_options(&RunOptions::default()))
            .map_err(|e| format!("cannot prepare the model for input shapes {shapes:?}: {e:#}"))
    }
}

/// tract runs on the CPU only. A GPU request is refused rather than quietly served on the CPU (even
/// with a CPU fallback configured): asking tract for a GPU is a configuration mistake to fix, not a
/// missing device to survive, and the fix is `engine: onnxruntime`.
fn refuse_gpu(path: &Path, device: Device) -> Result<(), BackendError> {
    if device == Device::Cpu {
        return Ok(());
    }
    Err(BackendError::Load {
        path: path.to_path_buf(),
        source: format!(
            "the tract engine runs on the CPU only, but {device} was asked for; use \
             `engine: onnxruntime` (with its GPU build) or `deviceType: cpu`"
        )
        .into(),
    })
}

/// Parses a proto, resolving external weight files relative to the model's folder.
fn parse(
    onnx: &tract_onnx::Onnx,
    proto: &tract_onnx::pb::ModelProto,
    path: &Path,
) -> tract_onnx::prelude::TractResult<InferenceModel> {
    let dir = path.parent().and_then(Path::to_str);
    Ok(onnx.parse(proto, dir)?.model)
}

impl LoadedModel for TractModel {
    fn signature(&self) -> &Signature {
        &self.inner.signature
    }

    fn new_session(&self, device: Device) -> Result<Box<dyn Session>, BackendError> {
        refuse_gpu(&self.inner.path, device)?;
        Ok(Box::new(TractSession { model: Arc::clone(&self.inner), states: HashMap::new() }))
    }
}

/// One worker's run states, one per input shape it has seen.
pub struct TractSession {
    model: Arc<Inner>,
    /// Run states keep their scratch buffers between calls, so a worker reuses memory per shape.
    states: HashMap<ShapeKey, TypedSimpleState>,
}

impl std::fmt::Debug for TractSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractSession").field("cached_shapes", &self.states.len()).finish()
    }
}

impl Session for TractSession {
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, BackendError> {
        let shapes: ShapeKey = inputs.iter().map(|t| t.shape().to_vec()).collect();
        if !self.states.contains_key(&shapes) {
            let plan = self.model.plan(&shapes).map_err(|e| BackendError::Inference(e.into()))?;
            let state =
                plan.spawn().map_err(|e| BackendError::Inference(format!("{e:#}").into()))?;
            if self.states.len() >= MAX_CACHED_SHAPES {
                self.states.clear();
            }
            self.states.insert(shapes.clone(), state);
        }
        let state = self.states.get_mut(&shapes).expect("state inserted above");
        let values = inputs
            .into_iter()
            .map(|t| convert::to_tract(t).map(Into::into))
            .collect::<Result<_, _>>()?;
        let outputs =
            state.run(values).map_err(|e| BackendError::Inference(format!("{e:#}").into()))?;
        let declared = &self.model.signature.outputs;
        if outputs.len() != declared.len() {
            return Err(BackendError::Output(format!(
                "the model returned {} outputs but declares {}",
                outputs.len(),
                declared.len()
            )));
        }
        outputs.iter().zip(declared).map(|(v, spec)| convert::from_tract(v, spec.dtype)).collect()
    }

    fn device(&self) -> Device {
        Device::Cpu
    }
}
