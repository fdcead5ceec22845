//! `vidlrp` for Python: the native part (`vidlrp._native`) of the module that
//! `python/vidlrp/__init__.py` presents. A thin layer over the crates: [`vidlrp_model::load`]
//! reads the weights, [`vidlrp_core::Sequential::explain`] explains on the device asked for
//! (the CPU backend, the `f64` reference backend, or CUDA in a build with the `cuda` feature),
//! [`vidlrp_snippet::read_snippet`] samples frames, [`vidlrp_stats`] fits the shares.
//!
//! Conventions: arrays are float32 `numpy.ndarray`s in the network's layout `(N, 3, T, H, W)`;
//! the GIL is released while the engine computes; every failure is a Python exception of the
//! `vidlrp.Error` family (`InputError` is also a `ValueError`, `MissingFileError` a
//! `FileNotFoundError`), never a crash of the interpreter: a panic inside the engine is caught
//! and raised as `vidlrp.Error`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;
use vidlrp_core::{
    Backend, Composite, HostTensor, LayerRelevance, Method, PoolRule, PresetOptions, Sequential,
    Target,
};
use vidlrp_cpu::{Cpu, CpuTensor};
use vidlrp_model::Device;
use vidlrp_reference::Reference;
use vidlrp_snippet::Preprocess;

/// The kinds of error, raised as the classes of the same names in `vidlrp/__init__.py`.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Bad input: dtype, shape, values, an unknown name or option (`ValueError`).
    Input,
    /// A path that does not exist (`FileNotFoundError`).
    Missing,
    /// Everything else: unreadable or refused files, engine failures (`vidlrp.Error`).
    Other,
}

/// A failure on its way to Python.
struct Failure(Kind, String);

impl Failure {
    fn input(m: impl Into<String>) -> Self {
        Self(Kind::Input, m.into())
    }
    fn other(e: impl std::fmt::Display) -> Self {
        Self(Kind::Other, e.to_string())
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        let class = match f.0 {
            Kind::Input => "InputError",
            Kind::Missing => "MissingFileError",
            Kind::Other => "Error",
        };
        Python::attach(|py| {
            match py
                .import("vidlrp")
                .and_then(|m| m.getattr(class))
                .and_then(|c| c.call1((f.1.clone(),)))
            {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            }
        })
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

/// `f()` with the GIL released and a panic turned into a [`Failure`].
fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    py.detach(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let m = p
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            Err(Failure(Kind::Other, format!("internal error (a bug): {m}")))
        })
    })
}

fn existing(path: &Path) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Failure(
            Kind::Missing,
            format!("{}: no such file or directory", path.display()),
        ))
    }
}

/// `obj` as a float32 array in C order at an `f32`-aligned address, borrowed for reading (held
/// until the guard drops): the array itself where it is one, else a copy NumPy makes (other
/// orders, strides, misaligned buffers). Other dtypes are input errors.
fn float_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> Result<PyReadonlyArrayDyn<'py, f32>> {
    let Ok(array) = obj.cast::<PyArrayDyn<f32>>() else {
        let dtype = obj
            .getattr("dtype")
            .map_or_else(|_| obj.get_type().to_string(), |d| d.to_string());
        return Err(Failure::input(format!(
            "{what} must be a float32 numpy.ndarray, got {dtype} (convert with \
             numpy.asarray(x, dtype=numpy.float32))"
        )));
    };
    // The address is checked as a raw pointer: a slice at a misaligned one would be undefined.
    let array = if array.is_c_contiguous() && array.data().is_aligned() {
        array.clone()
    } else {
        let copy = array
            .call_method1("copy", ("C",))
            .map_err(|e| Failure::input(format!("{what}: {e}")))?;
        copy.cast_into::<PyArrayDyn<f32>>()
            .map_err(|e| Failure::other(format!("{what}: copying: {e}")))?
    };
    array
        .try_readonly()
        .map_err(|e| Failure::input(format!("{what}: {e}")))
}

/// The values of an array [`float_array`] returned, in C order.
fn values<'a>(ro: &'a PyReadonlyArrayDyn<'_, f32>) -> Result<&'a [f32]> {
    ro.as_slice()
        .map_err(|e| Failure::other(format!("reading an array: {e}")))
}

/// **Errors** if `values` (of an array of `shape`) are empty or any is not finite.
fn check_values(values: &[f32], shape: &[usize], what: &str) -> Result<()> {
    if values.is_empty() {
        return Err(Failure::input(format!("{what} is empty (shape {shape:?})")));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Failure::input(format!(
            "{what} holds a non-finite value ({}) at flat index {i}",
            values[i]
        )));
    }
    Ok(())
}

/// Clips on their way to the engine, read in place: the caller's float32 array where it is
/// C-contiguous and aligned (the CPU backend computes on its memory), else NumPy's C-order copy.
struct Clips {
    /// `(N, 3, T, H, W)`.
    shape: Vec<usize>,
    /// The values: readable and unchanged while `owner` (a reference to the array) lives and
    /// the read guard [`Clips::read`] returns is held.
    ptr: *const f32,
    owner: std::sync::Arc<dyn Send + Sync>,
    /// Whether the array was one clip `(3, T, H, W)`.
    single: bool,
}

// SAFETY: the values are only read, while `owner` keeps the array alive and `explain` holds a
// read guard on it (rust-numpy's borrow flags: no writable borrow from Rust meanwhile); as
// with `torch.from_numpy`, Python code must not write the array during the call.
unsafe impl Send for Clips {}

impl Clips {
    /// The clips of `obj` (`(3, T, H, W)` as a batch of one) and the guard that must outlive
    /// their use.
    fn read<'py>(obj: &Bound<'py, PyAny>) -> Result<(Self, PyReadonlyArrayDyn<'py, f32>)> {
        let ro = float_array(obj, "clips")?;
        let mut shape = ro.shape().to_vec();
        let s = values(&ro)?;
        check_values(s, &shape, "clips")?;
        let single = shape.len() == 4;
        match shape.len() {
            4 => shape.insert(0, 1),
            5 => {}
            _ => {
                return Err(Failure::input(format!(
                    "clips must have shape (3, T, H, W) or (N, 3, T, H, W), got {shape:?}"
                )))
            }
        }
        let owner: Py<PyArrayDyn<f32>> = Bound::clone(&ro).unbind();
        let clips = Self {
            shape,
            ptr: s.as_ptr(),
            owner: std::sync::Arc::new(owner),
            single,
        };
        Ok((clips, ro))
    }

    /// The clips as a CPU tensor over the array's memory.
    fn into_cpu(self) -> Result<CpuTensor> {
        // SAFETY: the invariant of `Clips::ptr`: readable, unchanged, kept alive by `owner`.
        unsafe { CpuTensor::from_foreign(self.shape, self.ptr, self.owner) }.map_err(Failure::other)
    }

    /// The clips as a host tensor (a copy), for the backends that cannot read them in place.
    fn into_host(self) -> Result<HostTensor> {
        // SAFETY: as in `into_cpu`; the values are copied before this returns.
        let values = unsafe { std::slice::from_raw_parts(self.ptr, self.shape.iter().product()) };
        HostTensor::new(self.shape, values.to_vec()).map_err(Failure::other)
    }
}

fn numpy<'py>(py: Python<'py>, t: HostTensor) -> Result<Bound<'py, PyArrayDyn<f32>>> {
    let (shape, data) = t.into_parts();
    let flat = data.into_pyarray(py);
    flat.reshape(shape)
        .map_err(|e| Failure::other(format!("reshaping the result: {e}")))
}

/// A network built on one backend.
enum Engine {
    Cpu(Cpu, Sequential<Cpu>),
    Reference(Reference<f64>, Sequential<Reference<f64>>),
    #[cfg(feature = "cuda")]
    Cuda(vidlrp_cuda::Cuda, Sequential<vidlrp_cuda::Cuda>),
}

/// Sets the rules, moves `x` onto `be` (no copy on the CPU) and explains it.
fn explain_on<B: Backend>(
    be: &B,
    net: &Sequential<B>,
    upload: impl FnOnce(&B) -> Result<B::Tensor>,
    target: &Target,
    composite: &Composite,
) -> Result<vidlrp_core::Explanation> {
    net.rules(composite)
        .map_err(|e| Failure::input(e.to_string()))?;
    let xt = upload(be)?;
    net.explain(be, &xt, target, composite)
        .map_err(Failure::other)
}

/// `x` on `be` by way of a host copy (the backends that cannot read a NumPy array in place).
fn upload_host<B: Backend>(be: &B, x: Clips) -> Result<B::Tensor> {
    be.upload_owned(x.into_host()?).map_err(Failure::other)
}

/// A network built for one input shape, device and thread count, kept for the next call.
struct Built {
    input: [usize; 4],
    device: Device,
    threads: usize,
    engine: Engine,
}

impl Built {
    fn new(
        model: &vidlrp_model::Model,
        input: [usize; 4],
        device: Device,
        threads: usize,
    ) -> Result<Self> {
        let engine = match device {
            Device::Cpu => {
                let be = Cpu::new(threads).map_err(Failure::other)?;
                let net = model.build(&be, input).map_err(Failure::other)?;
                Engine::Cpu(be, net)
            }
            Device::Reference => {
                let be = Reference::<f64>::new();
                let net = model.build(&be, input).map_err(Failure::other)?;
                Engine::Reference(be, net)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(n) => {
                let be = vidlrp_cuda::Cuda::new(n).map_err(Failure::other)?;
                let net = model.build(&be, input).map_err(Failure::other)?;
                Engine::Cuda(be, net)
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(n) => {
                return Err(Failure::input(format!(
                    "device \"cuda:{n}\": this build of the Python module has no CUDA support \
                     (built without its default feature `cuda`); rebuild it with its default \
                     features"
                )))
            }
        };
        Ok(Self {
            input,
            device,
            threads,
            engine,
        })
    }

    fn explain(
        &self,
        x: Clips,
        target: &Target,
        composite: &Composite,
    ) -> Result<vidlrp_core::Explanation> {
        match &self.engine {
            Engine::Cpu(be, net) => explain_on(be, net, |_| x.into_cpu(), target, composite),
            Engine::Reference(be, net) => {
                let upload = |be: &Reference<f64>| upload_host(be, x);
                explain_on(be, net, upload, target, composite)
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(be, net) => {
                let upload = |be: &vidlrp_cuda::Cuda| upload_host(be, x);
                explain_on(be, net, upload, target, composite)
            }
        }
    }
}

/// A network's weights and what vidlrp read about them; see `vidlrp.load`.
///
///     >>> model = vidlrp.load("c3d.pickle")
///     >>> model.info["architecture"], model.info["classes"]
///     ('c3d', 487)
#[pyclass(module = "vidlrp", frozen)]
struct Model {
    model: vidlrp_model::Model,
    preset: Preprocess,
    /// The last network built (one call at a time uses it; others wait).
    built: Mutex<Option<Built>>,
}

/// Options of `Model.explain` beyond the method.
struct ExplainOptions {
    method: Method,
    pool: Option<PoolRule>,
    bounds: Option<(Vec<f32>, Vec<f32>)>,
    device: Device,
    threads: usize,
}

impl Model {
    fn composite(&self, o: &ExplainOptions) -> Result<Composite> {
        let (low, high) = o
            .bounds
            .clone()
            .unwrap_or_else(|| (self.preset.low(), self.preset.high()));
        let opts = PresetOptions {
            low,
            high,
            pool: o.pool,
            ..PresetOptions::default()
        };
        Composite::preset(o.method, &opts).map_err(|e| Failure::input(e.to_string()))
    }

    /// Explains `x` `[N, C, T, H, W]` on a network built for its shape on the device asked
    /// for (reused when the shape, device and threads are those of the last call).
    fn run(
        &self,
        x: Clips,
        target: &Target,
        o: &ExplainOptions,
    ) -> Result<vidlrp_core::Explanation> {
        let s = &x.shape;
        let input = [s[1], s[2], s[3], s[4]];
        self.model
            .check_input(input)
            .map_err(|e| Failure::input(e.to_string()))?;
        let composite = self.composite(o)?;
        let mut built = self
            .built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let reuse = matches!(&*built, Some(b)
            if b.input == input && b.device == o.device && b.threads == o.threads);
        if !reuse {
            *built = None;
            *built = Some(Built::new(&self.model, input, o.device, o.threads)?);
        }
        built
            .as_ref()
            .expect("built above")
            .explain(x, target, &composite)
    }
}

fn parse<T: std::str::FromStr>(value: &str, what: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| Failure::input(format!("{what}: {e}")))
}

/// The target of `Model.explain`: `None` (top-1), an int, or one int per clip.
fn target(obj: Option<&Bound<'_, PyAny>>, n: usize, classes: usize) -> Result<Target> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Target::TopOne);
    };
    let check = |c: i64| -> Result<usize> {
        usize::try_from(c)
            .ok()
            .filter(|&c| c < classes)
            .ok_or_else(|| {
                Failure::input(format!(
                    "target {c} is not a class of this model (0..{classes})"
                ))
            })
    };
    if let Ok(c) = obj.extract::<i64>() {
        return Ok(Target::Class(check(c)?));
    }
    let list: Vec<i64> = obj
        .call_method0("tolist")
        .unwrap_or_else(|_| obj.clone())
        .extract()
        .map_err(|_| Failure::input("target must be None, an int or a sequence of ints"))?;
    if list.len() != n {
        return Err(Failure::input(format!(
            "{} targets for {n} clip(s)",
            list.len()
        )));
    }
    let classes: Vec<usize> = list.into_iter().map(check).collect::<Result<_>>()?;
    Ok(Target::PerSample(classes))
}

#[pymethods]
impl Model {
    /// What vidlrp read: path, format, origin, architecture, widths, classes, parameters,
    /// pool5 (C3D), preset and the input size `(3, T, H, W)` the preset crops to.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.model;
        let d = PyDict::new(py);
        d.set_item("path", m.path.to_string_lossy().into_owned())?;
        d.set_item("format", m.format.to_string())?;
        d.set_item("origin", m.origin())?;
        d.set_item("architecture", m.arch())?;
        d.set_item("widths", m.widths())?;
        d.set_item("classes", m.classes())?;
        d.set_item("parameters", m.num_params())?;
        d.set_item("pool5", m.pool5().map(|p| format!("{p:?}").to_lowercase()))?;
        d.set_item("preset", self.preset.to_string())?;
        let [h, w] = self.preset.crop.1;
        d.set_item("input_size", (3, 16, h, w))?;
        d.set_item("skipped", m.skipped.clone())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "vidlrp.Model({} from {}, {} classes, preset {})",
            self.model.arch(),
            self.model.path.display(),
            self.model.classes(),
            self.preset
        )
    }

    /// Explains `clips` (float32, `(3, T, H, W)` or `(N, 3, T, H, W)`) with `method` for
    /// `target` (None: each clip's top class; an int; one int per clip). `pool`: proportional
    /// or wta; `bounds`: z^B bounds as a preset name or `(low, high)`; `device`: cpu,
    /// reference, cuda or cuda:N; `threads`: 0 for all.
    ///
    ///     >>> e = model.explain(clip, "dtd")
    ///     >>> e.relevance.shape == clip.shape, round(e.conservation, 3)
    ///     (True, 1.0)
    #[pyo3(signature = (clips, method="dtd", target=None, *, pool=None, bounds=None, device="cpu", threads=0))]
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        py: Python<'_>,
        clips: &Bound<'_, PyAny>,
        method: &str,
        target: Option<&Bound<'_, PyAny>>,
        pool: Option<&str>,
        bounds: Option<&Bound<'_, PyAny>>,
        device: &str,
        threads: usize,
    ) -> PyResult<Explanation> {
        let device: Device = parse(device, "device")?;
        // `_guard` keeps the array borrowed for reading until the explanation is made.
        let (x, _guard) = Clips::read(clips)?;
        // The last reference to the array is dropped here, with the GIL held.
        let _owner = std::sync::Arc::clone(&x.owner);
        let single = x.single;
        let bounds = match bounds.filter(|b| !b.is_none()) {
            None => None,
            Some(b) => {
                let p: Option<String> = b.extract().ok();
                match p {
                    Some(name) => {
                        let preset: Preprocess = parse(&name, "bounds")?;
                        Some((preset.low(), preset.high()))
                    }
                    None => Some(b.extract::<(Vec<f32>, Vec<f32>)>().map_err(|_| {
                        Failure::input("bounds must be a preset name or (low, high) lists")
                    })?),
                }
            }
        };
        let options = ExplainOptions {
            method: parse(method, "method")?,
            pool: pool.map(|p| parse(p, "pool")).transpose()?,
            bounds,
            device,
            threads,
        };
        let target = self::target(target, x.shape[0], self.model.classes())?;
        let e = compute(py, || self.run(x, &target, &options))?;
        Explanation::new(py, e, single)
    }
}

/// The result of `Model.explain`: `relevance`, `logits`, `explained_class`, `conservation`,
/// `layers`. The arrays are made once, from the engine's buffers without a copy; each access
/// returns the same array.
///
///     >>> e = model.explain(clip, "sa", target=3)
///     >>> e.explained_class
///     3
#[pyclass(module = "vidlrp", frozen)]
struct Explanation {
    relevance: Py<PyArrayDyn<f32>>,
    logits: Py<PyArrayDyn<f32>>,
    classes: Vec<usize>,
    conservation: Vec<f64>,
    layers: Vec<LayerRelevance>,
    single: bool,
}

impl Explanation {
    fn new(py: Python<'_>, e: vidlrp_core::Explanation, single: bool) -> PyResult<Self> {
        let conservation = e.conservation();
        // Without the leading batch axis when one clip was explained.
        let per_call = |t: HostTensor| -> PyResult<Py<PyArrayDyn<f32>>> {
            let t = if single {
                let shape = t.shape()[1..].to_vec();
                t.reshape(shape).map_err(Failure::other)?
            } else {
                t
            };
            Ok(numpy(py, t)?.unbind())
        };
        Ok(Self {
            relevance: per_call(e.relevance)?,
            logits: per_call(e.logits)?,
            classes: e.classes,
            conservation,
            layers: e.layers,
            single,
        })
    }

    /// The value of the one clip explained, or the list of all.
    fn one_or_all<'py, T>(&self, py: Python<'py>, values: Vec<T>) -> PyResult<Py<PyAny>>
    where
        T: IntoPyObject<'py> + Clone,
        Vec<T>: IntoPyObject<'py>,
    {
        Ok(if self.single {
            values[0].clone().into_bound_py_any(py)?.unbind()
        } else {
            values.into_bound_py_any(py)?.unbind()
        })
    }
}

#[pymethods]
impl Explanation {
    /// Relevance of every input value, in the shape of the clips given.
    #[getter]
    fn relevance<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f32>> {
        self.relevance.bind(py).clone()
    }

    /// The logits `(N, classes)` (`(classes,)` for one clip).
    #[getter]
    fn logits<'py>(&self, py: Python<'py>) -> Bound<'py, PyArrayDyn<f32>> {
        self.logits.bind(py).clone()
    }

    /// The class explained, per clip (an int for one clip).
    #[getter]
    fn explained_class(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.one_or_all(py, self.classes.clone())
    }

    /// `sum R / f_c(x)` per clip (a float for one clip): 1 for a conserving explanation.
    #[getter]
    fn conservation(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.one_or_all(py, self.conservation.clone())
    }

    /// Per layer, from the output down: name, kind, rule, relevance sums at its output and
    /// input (per clip).
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for l in &self.layers {
            let d = PyDict::new(py);
            d.set_item("layer", &l.layer)?;
            d.set_item("kind", format!("{:?}", l.kind).to_lowercase())?;
            d.set_item("rule", &l.rule)?;
            d.set_item("output_sum", l.output_sum.clone())?;
            d.set_item("input_sum", l.input_sum.clone())?;
            list.append(d)?;
        }
        Ok(list)
    }

    fn __repr__(&self) -> String {
        format!(
            "vidlrp.Explanation(classes {:?}, conservation {:?})",
            self.classes, self.conservation
        )
    }
}

/// Reads a model from any weight file vidlrp reads (safetensors, .npz, PyTorch zip or legacy
/// checkpoints, Caffe models; C3D and torchvision's video ResNets). `pool5`: port or caffe;
/// `preset`: caffe, port or kinetics, optionally with `@SIZE`.
///
///     >>> model = vidlrp.load("r3d_18.pth")
///     >>> model.info["preset"]
///     'kinetics'
#[pyfunction]
#[pyo3(signature = (path, *, pool5=None, preset=None))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    pool5: Option<&str>,
    preset: Option<&str>,
) -> PyResult<Model> {
    existing(&path)?;
    let pool5 = pool5.map(|p| parse(p, "pool5")).transpose()?;
    let model = compute(py, || {
        vidlrp_model::load(&path, pool5).map_err(|e| match e {
            vidlrp_model::ModelError::Argument(_) => Failure::input(e.to_string()),
            e => Failure::other(e),
        })
    })?;
    let name = preset.map_or_else(|| model.preset_name(), ToString::to_string);
    let preset: Preprocess = parse(&name, "preset")?;
    Ok(Model {
        model,
        preset,
        built: Mutex::new(None),
    })
}

/// One snippet of a video, frames directory or `.npy` of frames, preprocessed: float32
/// `(3, length, H, W)`.
///
///     >>> clip = vidlrp.read_snippet("tennis.mp4", offset=0, step=2, preset="caffe")
///     >>> clip.shape
///     (3, 16, 112, 112)
#[pyfunction]
#[pyo3(signature = (video, offset=0, step=1, preset="caffe", length=16))]
fn read_snippet<'py>(
    py: Python<'py>,
    video: PathBuf,
    offset: usize,
    step: usize,
    preset: &str,
    length: usize,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    existing(&video)?;
    let preset: Preprocess = parse(preset, "preset")?;
    let spec = vidlrp_snippet::SnippetSpec {
        length,
        offset,
        step,
    };
    let snippet = compute(py, || {
        vidlrp_snippet::read_snippet(&video, &spec, vidlrp_snippet::ShortPolicy::Skip, &preset)
            .map_err(|e| match e {
                vidlrp_snippet::SnippetError::TooShort { .. }
                | vidlrp_snippet::SnippetError::Argument(_) => Failure::input(e.to_string()),
                e => Failure::other(e),
            })
    })?;
    Ok(numpy(py, snippet.input)?)
}

/// Frame shares `r_t = R_t / sum R` of one relevance map `(3, T, H, W)` or `(1, 3, T, H, W)`.
///
///     >>> shares = vidlrp.frame_shares(e.relevance)
///     >>> len(shares), round(sum(shares), 6)
///     (16, 1.0)
#[pyfunction]
fn frame_shares(relevance: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let r = float_array(relevance, "relevance")?;
    let shape = r.shape().to_vec();
    let values = values(&r)?;
    check_values(values, &shape, "relevance")?;
    Ok(vidlrp_stats::frame_shares(values, &shape).map_err(|e| Failure::input(e.to_string()))?)
}

/// The border fit `r(tau) ~ a tau^2 + b tau + c`: `(a, b, c)`; `a` is the border strength.
///
///     >>> a, b, c = vidlrp.border_fit(shares)
#[pyfunction]
fn border_fit(shares: Vec<f64>) -> PyResult<(f64, f64, f64)> {
    let [a, b, c] =
        vidlrp_stats::fit_quadratic(&shares).map_err(|e| Failure::input(e.to_string()))?;
    Ok((a, b, c))
}

/// The lookahead fit `r(tau) ~ b' tau + c'`: `(b', c')`; `b'` is the lookahead strength.
///
///     >>> slope, intercept = vidlrp.lookahead_fit(shares)
#[pyfunction]
fn lookahead_fit(shares: Vec<f64>) -> PyResult<(f64, f64)> {
    let [b, c] = vidlrp_stats::fit_linear(&shares).map_err(|e| Failure::input(e.to_string()))?;
    Ok((b, c))
}

/// The method names `Model.explain` takes, with a line each.
///
///     >>> dict(vidlrp.methods())["dtd"]
///     'deep Taylor: z^B on the first layer, z+ above, proportional pooling (the paper)'
#[pyfunction]
fn methods() -> Vec<(&'static str, &'static str)> {
    Method::ALL
        .iter()
        .map(|m| (m.name(), m.description()))
        .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    vidlrp_alloc::init();
    m.add_class::<Model>()?;
    m.add_class::<Explanation>()?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(read_snippet, m)?)?;
    m.add_function(wrap_pyfunction!(frame_shares, m)?)?;
    m.add_function(wrap_pyfunction!(border_fit, m)?)?;
    m.add_function(wrap_pyfunction!(lookahead_fit, m)?)?;
    m.add_function(wrap_pyfunction!(methods, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
