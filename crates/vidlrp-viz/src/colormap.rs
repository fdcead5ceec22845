//! Colour maps in Zennit's colour-map language (`zennit.cmap.ColorMap`), so heatmaps look like
//! Zennit's: `"00f,80:fff,f00"` is blue, white at index 0x80, red; colours without an index are
//! spread evenly between their neighbours; values between nodes are interpolated linearly.

/// Zennit's built-in colour maps: `(name, source)`.
pub const COLORMAPS: &[(&str, &str)] = &[
    ("gray", "000,fff"),
    ("wred", "fff,f00"),
    ("wblue", "fff,00f"),
    ("hot", "000,f00,ff0,fff"),
    ("cold", "000,00f,0ff"),
    ("coldnhot", "0ff,00f,80:000,f00,ff0,fff"),
    ("bwr", "00f,80:fff,f00"),
    ("france", "0055a4,80:fff,ef4135"),
    ("seismic", "0000d0,80:d0d0d0,d00000"),
    ("coolio", "00d0d0,80:d0d0d0,d000d0"),
    ("coleus", "00d000,80:d0d0d0,d000d0"),
];

/// A 256-entry RGB palette.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette(pub [[u8; 3]; 256]);

impl Palette {
    /// The palette of a built-in colour map, or of a colour-map source such as `"000,f00"`.
    ///
    /// **Errors** with a message if the name is unknown and the text is not a valid source.
    pub fn new(name_or_source: &str) -> Result<Self, String> {
        let source = COLORMAPS
            .iter()
            .find(|(n, _)| *n == name_or_source)
            .map_or(name_or_source, |(_, s)| s);
        let nodes = parse(source).map_err(|e| {
            let names: Vec<&str> = COLORMAPS.iter().map(|c| c.0).collect();
            format!(
                "unknown colour map {name_or_source:?} ({e}); built-in: {}",
                names.join(", ")
            )
        })?;
        let (indices, colors) = place(nodes)?;
        let mut out = [[0u8; 3]; 256];
        for (i, px) in out.iter_mut().enumerate() {
            let x = i as f64;
            // The node segment [indices[k-1], indices[k]) that holds x.
            let k = indices[..indices.len() - 1]
                .iter()
                .position(|&v| v > x)
                .unwrap_or(indices.len() - 1);
            let (a, b) = (indices[k - 1], indices[k]);
            let alpha = (x - a) / (b - a);
            for c in 0..3 {
                let v = colors[k - 1][c] * (1.0 - alpha) + colors[k][c] * alpha;
                px[c] = (v + 1e-9).floor().clamp(0.0, 255.0) as u8;
            }
        }
        Ok(Self(out))
    }

    /// The colour of a value in `[0, 1]` (clamped): entry `floor(255 v)`.
    pub fn color(&self, v: f32) -> [u8; 3] {
        let i = (v.clamp(0.0, 1.0) * 255.0) as usize;
        self.0[i.min(255)]
    }
}

type Node = (Option<usize>, [f64; 3]);

fn parse(source: &str) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    for part in source.split(',') {
        let part = part.trim();
        let (index, color) = match part.split_once(':') {
            Some((i, c)) => {
                let i = usize::from_str_radix(i.trim(), 16)
                    .map_err(|_| format!("bad index in {part:?}"))?;
                if i > 255 {
                    return Err(format!("index {i} out of 0..=ff"));
                }
                (Some(i), c.trim())
            }
            None => (None, part),
        };
        let hex = |s: &str| {
            u8::from_str_radix(s, 16)
                .map(f64::from)
                .map_err(|_| format!("bad colour {color:?}"))
        };
        let rgb = match color.len() {
            3 => {
                let d: Vec<String> = color.chars().map(|c| format!("{c}{c}")).collect();
                [hex(&d[0])?, hex(&d[1])?, hex(&d[2])?]
            }
            6 => [hex(&color[0..2])?, hex(&color[2..4])?, hex(&color[4..6])?],
            _ => return Err(format!("bad colour {color:?}")),
        };
        nodes.push((index, rgb));
    }
    if nodes.len() < 2 {
        return Err("a colour map needs at least 2 colours".into());
    }
    Ok(nodes)
}

/// Node positions on 0..=256 as Zennit places them.
fn place(mut nodes: Vec<Node>) -> Result<(Vec<f64>, Vec<[f64; 3]>), String> {
    let start = nodes.remove(0);
    let mut result: Vec<(usize, [f64; 3])> = vec![(0, start.1)];
    if let Some(i) = start.0.filter(|&i| i > 0) {
        result.push((i, start.1));
    }
    let mut pending: Vec<[f64; 3]> = Vec::new();
    let count = nodes.len();
    for (n, (index, color)) in nodes.into_iter().enumerate() {
        let index = match index {
            None if n < count - 1 => {
                pending.push(color);
                continue;
            }
            None => 255,
            Some(i) if i < result.last().expect("non-empty").0 => {
                return Err("colour map indices must ascend".into());
            }
            Some(i) => i,
        };
        if !pending.is_empty() {
            let prev = result.last().expect("non-empty").0 as f64;
            let k = pending.len() + 1;
            for (j, c) in pending.drain(..).enumerate() {
                let alpha = (j + 1) as f64 / k as f64;
                result.push(((prev * (1.0 - alpha) + index as f64 * alpha) as usize, c));
            }
        }
        result.push((index, color));
    }
    let last = result.last().expect("non-empty").1;
    result.push((256, last));
    Ok((
        result.iter().map(|r| r.0 as f64).collect(),
        result.iter().map(|r| r.1).collect(),
    ))
}
