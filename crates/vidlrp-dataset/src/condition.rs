//! [`Condition`]: what is measured on every video.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use vidlrp_core::Method;

use crate::{DatasetError, Result};

/// An explanation method of the analysis: a preset on the given model, or DTD on the same
/// architecture re-initialised with a seed (the paper's untrained baseline DTD-u).
///
/// ```
/// use vidlrp_dataset::AnalysisMethod;
/// use vidlrp_core::Method;
/// assert_eq!("dtd-u".parse::<AnalysisMethod>().unwrap(), AnalysisMethod::DtdUntrained);
/// assert_eq!("sa".parse::<AnalysisMethod>().unwrap(), AnalysisMethod::Explain(Method::Sa));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnalysisMethod {
    /// A named method on the model under analysis.
    Explain(Method),
    /// DTD on a seeded He-normal re-initialisation of the same architecture.
    DtdUntrained,
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
            AnalysisMethod::Explain(_) => Network::Trained,
        }
    }

    /// The method of [`vidlrp_core`] that explains the network: DTD-u is DTD.
    pub fn method(self) -> vidlrp_core::Method {
        match self {
            AnalysisMethod::Explain(m) => m,
            AnalysisMethod::DtdUntrained => vidlrp_core::Method::Dtd,
        }
    }

    /// The method's name (`dtd`, `sa`, `dtd-u`, ...).
    pub fn name(self) -> &'static str {
        match self {
            AnalysisMethod::Explain(m) => m.name(),
            AnalysisMethod::DtdUntrained => "dtd-u",
        }
    }
}

impl FromStr for AnalysisMethod {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self> {
        if s == "dtd-u" {
            return Ok(AnalysisMethod::DtdUntrained);
        }
        s.parse::<Method>()
            .map(AnalysisMethod::Explain)
            .map_err(|e| DatasetError::Records(format!("{e} (or dtd-u)")))
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
