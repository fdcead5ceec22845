//! [`Condition`]: what is measured on every video.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vidlrp_core::Method;

use crate::{DatasetError, Result};

/// Which explanation, on which network: a preset on the given model, DTD on the same
/// architecture re-initialised with a seed (the paper's untrained baseline DTD-u), or a
/// seeded random ranking (the baseline of `evaluate`; it has no relevance to profile).
/// One enum for every data-set command; each says which it accepts.
///
/// ```
/// use vidlrp_dataset::AnalysisMethod;
/// use vidlrp_core::Method;
/// assert_eq!("dtd-u".parse::<AnalysisMethod>().unwrap(), AnalysisMethod::DtdUntrained);
/// assert_eq!("sa".parse::<AnalysisMethod>().unwrap(), AnalysisMethod::Explain(Method::Sa));
/// assert_eq!("random".parse::<AnalysisMethod>().unwrap(), AnalysisMethod::Random);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnalysisMethod {
    /// A named method on the model under analysis.
    Explain(Method),
    /// DTD on a seeded He-normal re-initialisation of the same architecture.
    DtdUntrained,
    /// A seeded random ranking of regions, no explanation (`evaluate`'s baseline).
    Random,
}

/// The network a condition explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// The model under analysis (the run's weights).
    Trained,
    /// A seeded He-normal re-initialisation of its architecture (DTD-u's baseline).
    Untrained,
}

impl AnalysisMethod {
    /// The network this method explains.
    ///
    /// ```
    /// use vidlrp_dataset::{AnalysisMethod, Network};
    /// assert_eq!(AnalysisMethod::DtdUntrained.network(), Network::Untrained);
    /// ```
    pub fn network(self) -> Network {
        match self {
            AnalysisMethod::DtdUntrained => Network::Untrained,
            AnalysisMethod::Explain(_) | AnalysisMethod::Random => Network::Trained,
        }
    }

    /// The method of [`vidlrp_core`] that explains the network (DTD-u is DTD); `None` for
    /// the random baseline, which explains nothing.
    pub fn method(self) -> Option<Method> {
        match self {
            AnalysisMethod::Explain(m) => Some(m),
            AnalysisMethod::DtdUntrained => Some(Method::Dtd),
            AnalysisMethod::Random => None,
        }
    }

    /// The method's name (`dtd`, `sa`, `dtd-u`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AnalysisMethod::Explain(m) => m.name(),
            AnalysisMethod::DtdUntrained => "dtd-u",
            AnalysisMethod::Random => "random",
        }
    }
}

impl FromStr for AnalysisMethod {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dtd-u" => return Ok(AnalysisMethod::DtdUntrained),
            "random" => return Ok(AnalysisMethod::Random),
            _ => {}
        }
        s.parse::<Method>()
            .map(AnalysisMethod::Explain)
            .map_err(|e| DatasetError::Records(format!("{e} (or dtd-u, random)")))
    }
}

impl fmt::Display for AnalysisMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for AnalysisMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for AnalysisMethod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One measured condition: a method at an offset and step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Table key (`dtd`, `dtd step=4`, `sa offset=16`), unique within a run.
    pub key: String,
    /// The explanation method.
    pub method: AnalysisMethod,
    /// Snippet offset.
    pub offset: usize,
    /// Snippet step.
    pub step: usize,
}

impl Condition {
    /// `profile`'s conditions: each method at one `(offset, step)`, keyed by the method.
    ///
    /// ```
    /// use vidlrp_dataset::{AnalysisMethod, Condition};
    /// let c = Condition::profile(&[AnalysisMethod::DtdUntrained], 0, 1);
    /// assert_eq!((c[0].key.as_str(), c[0].offset, c[0].step), ("dtd-u", 0, 1));
    /// ```
    pub fn profile(methods: &[AnalysisMethod], offset: usize, step: usize) -> Vec<Condition> {
        let key = |m: AnalysisMethod, _: usize, _: usize| m.to_string();
        Self::grid(methods, &[(offset, step)], key)
    }

    /// `sweep-steps`' conditions: every method at every step, keyed `METHOD step=S`,
    /// methods outermost.
    ///
    /// ```
    /// use vidlrp_core::Method;
    /// use vidlrp_dataset::{AnalysisMethod, Condition};
    /// let c = Condition::step_sweep(&[AnalysisMethod::Explain(Method::Dtd)], &[1, 4], 0);
    /// assert_eq!(c[1].key, "dtd step=4");
    /// ```
    pub fn step_sweep(
        methods: &[AnalysisMethod],
        steps: &[usize],
        offset: usize,
    ) -> Vec<Condition> {
        let points: Vec<_> = steps.iter().map(|&s| (offset, s)).collect();
        Self::grid(methods, &points, |m, _, s| format!("{m} step={s}"))
    }

    /// `sweep-offsets`' conditions: every method at every offset, keyed `METHOD offset=O`,
    /// methods outermost.
    pub fn offset_sweep(
        methods: &[AnalysisMethod],
        offsets: &[usize],
        step: usize,
    ) -> Vec<Condition> {
        let points: Vec<_> = offsets.iter().map(|&o| (o, step)).collect();
        Self::grid(methods, &points, |m, o, _| format!("{m} offset={o}"))
    }

    /// Every method at every `(offset, step)`, methods outermost.
    fn grid(
        methods: &[AnalysisMethod],
        points: &[(usize, usize)],
        key: impl Fn(AnalysisMethod, usize, usize) -> String,
    ) -> Vec<Condition> {
        methods
            .iter()
            .flat_map(|&method| {
                points
                    .iter()
                    .map(move |&(offset, step)| (method, offset, step))
            })
            .map(|(method, offset, step)| Condition {
                key: key(method, offset, step),
                method,
                offset,
                step,
            })
            .collect()
    }
}
