//! The pickle audit: every Python global a pickle names must be on [`ALLOWED_GLOBALS`], or the
//! file is refused before any tensor is read.
//!
//! Nothing pickled is ever executed here (the tensor reader interprets the tensor-rebuild calls
//! and keeps everything else opaque); the audit makes that policy visible: a checkpoint that
//! *asks* for `os.system`, `builtins.eval` or any other callable is an error, not a silently
//! ignored object. The audit walks opcodes only (it skips their arguments) and reads at most
//! [`MAX_LINE`] bytes of any text argument. Its memory is bounded whatever the file: the memo
//! holds at most [`MAX_MEMO`] entries (a pickle with more is refused), each a shared pointer
//! to a string the file spelled out (so repeating a memo opcode copies nothing), and the list
//! of globals found holds each allowed global once.

use std::io::{self, BufRead, Read};

/// The globals a weight checkpoint may name: PyTorch's tensor-rebuild functions and storage
/// types, the containers of a state dict, and data-only constructors (sizes, devices, dtypes,
/// numpy scalars in training metadata). The model of this list is PyTorch's own
/// `weights_only` unpickler.
pub const ALLOWED_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Tensor"),
    ("torch", "Size"),
    ("torch", "device"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.storage", "UntypedStorage"),
    ("torch.storage", "TypedStorage"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
];

/// torch dtypes (`torch.float32`, ...) a pickle may name.
const TORCH_DTYPES: &[&str] = &[
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long",
    "int32", "int", "int16", "short", "int8", "uint8", "bool",
];

/// The longest text argument (a global's module or name, a decimal number) read.
pub const MAX_LINE: usize = 4096;

/// The most memo entries a pickle may make (2^20; PyTorch state dicts of a thousand tensors
/// make about ten thousand): the audit's memo is then at most ~50 MB.
pub const MAX_MEMO: usize = 1 << 20;

/// Whether `module.name` is allowed.
pub fn is_allowed(module: &str, name: &str) -> bool {
    ALLOWED_GLOBALS.contains(&(module, name))
        || ((module == "torch" || module == "torch.cuda") && name.ends_with("Storage"))
        || (module == "torch" && TORCH_DTYPES.contains(&name))
}

/// What the audit found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// The pickle names a global that is not on the allow-list.
    Forbidden(String),
    /// The pickle cannot be audited (bad opcode, a global whose name is computed, truncation).
    Invalid(String),
}

impl std::fmt::Display for AuditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditError::Forbidden(g) => write!(
                f,
                "the pickle calls {g}, which is not a tensor-rebuild function; refusing to load it \
                 (vidlrp never executes pickled code, and a weight file has no reason to name {g})"
            ),
            AuditError::Invalid(m) => write!(f, "the pickle cannot be audited: {m}"),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> AuditError {
    AuditError::Invalid(e.to_string())
}

fn eof(e: &io::Error) -> AuditError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        AuditError::Invalid("the pickle is truncated".into())
    } else {
        invalid(e)
    }
}

fn read_exact<R: Read>(r: &mut R, n: usize) -> Result<Vec<u8>, AuditError> {
    let mut b = vec![0; n];
    r.read_exact(&mut b).map_err(|e| eof(&e))?;
    Ok(b)
}

fn read_u64<R: Read>(r: &mut R, width: usize) -> Result<u64, AuditError> {
    let b = read_exact(r, width)?;
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(&b);
    Ok(u64::from_le_bytes(v))
}

/// Skips `n` bytes without allocating them.
fn skip<R: Read>(r: &mut R, n: u64) -> Result<(), AuditError> {
    let copied = io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| eof(&e))?;
    if copied == n {
        Ok(())
    } else {
        Err(AuditError::Invalid("the pickle is truncated".into()))
    }
}

/// A newline-terminated text argument, at most [`MAX_LINE`] bytes.
fn read_line<R: BufRead>(r: &mut R) -> Result<String, AuditError> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| eof(&e))?;
    if line.last() != Some(&b'\n') {
        return Err(AuditError::Invalid(if line.len() > MAX_LINE {
            format!("a text argument is longer than {MAX_LINE} bytes")
        } else {
            "the pickle is truncated".into()
        }));
    }
    line.pop();
    String::from_utf8(line).map_err(|_| invalid("a text argument is not UTF-8"))
}

/// A length-prefixed string: kept when short (it may name a global), skipped otherwise.
fn string_arg<R: Read>(r: &mut R, n: u64) -> Result<Option<String>, AuditError> {
    if n <= MAX_LINE as u64 {
        let b = read_exact(r, n as usize)?;
        Ok(String::from_utf8(b).ok())
    } else {
        skip(r, n)?;
        Ok(None)
    }
}

/// Adds `module.name` to `found` if it is allowed (each once: their number is bounded by the
/// allow-list).
///
/// **Errors** with [`AuditError::Forbidden`] if it is not.
fn note_global(module: &str, name: &str, found: &mut Vec<String>) -> Result<(), AuditError> {
    let g = format!("{module}.{name}");
    if !is_allowed(module, name) {
        return Err(AuditError::Forbidden(g));
    }
    if !found.contains(&g) {
        found.push(g);
    }
    Ok(())
}

/// Audits one pickle, reading up to and including its STOP opcode, and returns the globals
/// it names (all allowed).
///
/// **Errors** with [`AuditError::Forbidden`] on the first global not allowed, and with
/// [`AuditError::Invalid`] on unknown opcodes, extension-registry references, a
/// `STACK_GLOBAL` whose operands are not literal strings, or truncation.
pub fn audit_pickle<R: BufRead>(r: &mut R) -> Result<Vec<String>, AuditError> {
    use std::rc::Rc;
    let mut found = Vec::new();
    // The last two values pushed, as strings where they are strings (for STACK_GLOBAL), and
    // the memo as the unpickler keeps it: every index it assigns, with the string stored there
    // (`None` for any other value), so that MEMOIZE's index (the memo's length) is the
    // unpickler's and a GET sees what the unpickler's GET would.
    let mut recent: [Option<Rc<str>>; 2] = [None, None];
    let mut memo: std::collections::HashMap<u64, Option<Rc<str>>> =
        std::collections::HashMap::new();
    let check = note_global;
    loop {
        let op = read_exact(r, 1)?[0];
        // What this opcode pushes, for the STACK_GLOBAL bookkeeping: Some(Some(s)) a string,
        // Some(None) another value, None nothing (or a memo store).
        let mut pushed: Option<Option<Rc<str>>> = Some(None);
        match op {
            b'.' => return Ok(found),
            // Globals.
            b'c' | b'i' => {
                let module = read_line(r)?;
                let name = read_line(r)?;
                check(&module, &name, &mut found)?;
            }
            0x93 => match (&recent[0], &recent[1]) {
                (Some(module), Some(name)) => {
                    let (module, name) = (module.clone(), name.clone());
                    check(&module, &name, &mut found)?;
                }
                _ => {
                    return Err(invalid(
                        "STACK_GLOBAL with operands that are not literal strings",
                    ))
                }
            },
            0x82..=0x84 => return Err(invalid("extension-registry opcodes (EXT1/2/4)")),
            // Fixed-size arguments.
            b'K' | 0x88 | 0x89 => {
                if op == b'K' {
                    skip(r, 1)?;
                }
            }
            b'M' => skip(r, 2)?,
            b'J' => skip(r, 4)?,
            b'G' => skip(r, 8)?,
            0x80 => {
                skip(r, 1)?;
                pushed = None;
            }
            0x95 => {
                skip(r, 8)?;
                pushed = None;
            }
            // Memo.
            b'q' | b'r' | 0x94 | b'p' => {
                let idx = match op {
                    b'q' => read_u64(r, 1)?,
                    b'r' => read_u64(r, 4)?,
                    b'p' => read_line(r)?
                        .trim()
                        .parse()
                        .map_err(|_| invalid("a PUT index is not a number"))?,
                    _ => memo.len() as u64,
                };
                memo.insert(idx, recent[1].clone());
                if memo.len() > MAX_MEMO {
                    return Err(invalid(format!("more than {MAX_MEMO} memo entries")));
                }
                pushed = None;
            }
            b'h' | b'j' | b'g' => {
                let idx = match op {
                    b'h' => read_u64(r, 1)?,
                    b'j' => read_u64(r, 4)?,
                    _ => read_line(r)?
                        .trim()
                        .parse()
                        .map_err(|_| invalid("a GET index is not a number"))?,
                };
                pushed = Some(memo.get(&idx).cloned().flatten());
            }
            // Length-prefixed strings and bytes.
            b'X' | b'T' | b'B' => {
                let n = read_u64(r, 4)?;
                let s = string_arg(r, n)?;
                pushed = Some(if op == b'B' { None } else { s.map(Rc::from) });
            }
            0x8c | b'U' | b'C' => {
                let n = read_u64(r, 1)?;
                let s = string_arg(r, n)?;
                pushed = Some(if op == b'C' { None } else { s.map(Rc::from) });
            }
            0x8d | 0x8e | 0x96 => {
                let n = read_u64(r, 8)?;
                let s = string_arg(r, n)?;
                pushed = Some(if op == 0x8d { s.map(Rc::from) } else { None });
            }
            0x8a => {
                let n = read_u64(r, 1)?;
                skip(r, n)?;
            }
            0x8b => {
                let n = read_u64(r, 4)?;
                skip(r, n)?;
            }
            // Newline-terminated arguments.
            b'I' | b'L' | b'F' | b'P' => {
                read_line(r)?;
            }
            b'S' | b'V' => {
                let s = read_line(r)?;
                pushed = Some(Some(Rc::from(s.trim_matches(['\'', '"']))));
            }
            // No arguments.
            b'('
            | b'0'
            | b'1'
            | b'2'
            | b'N'
            | b'R'
            | b']'
            | b'a'
            | b'b'
            | b'd'
            | b'}'
            | b'e'
            | b'l'
            | b')'
            | b's'
            | b't'
            | b'u'
            | b'o'
            | b'Q'
            | 0x81
            | 0x85..=0x87
            | 0x8f
            | 0x90..=0x92
            | 0x97
            | 0x98 => {}
            other => return Err(invalid(format!("unknown opcode 0x{other:02x}"))),
        }
        if let Some(v) = pushed {
            recent = [recent[1].take(), v];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(b: &[u8]) -> Result<Vec<String>, AuditError> {
        audit_pickle(&mut io::Cursor::new(b))
    }

    /// MEMOIZE's index is the unpickler's memo length, non-string values included: counting
    /// only strings would shift every later index by one here, and the audit would check
    /// `torch.Tensor` (its indices 1 and 3) while the unpickler imports `os.system` (#30).
    #[test]
    fn memo_indices_follow_the_unpickler() {
        let skew = b"\x80\x04N\x94\x8c\x02os\x94\x8c\x05torch\x94\x8c\x06system\x94\x8c\x06Tensor\x94h\x01h\x03\x93.";
        assert_eq!(audit(skew), Err(AuditError::Forbidden("os.system".into())));
        let fine = b"\x80\x04N\x94\x8c\x02os\x94\x8c\x05torch\x94\x8c\x06system\x94\x8c\x06Tensor\x94h\x02h\x04\x93.";
        assert_eq!(audit(fine).unwrap(), vec!["torch.Tensor"]);
    }

    /// One 4 KiB string memoized again and again: each MEMOIZE shares the string (no copy),
    /// and past MAX_MEMO entries the pickle is refused; repeated globals are listed once.
    #[test]
    fn the_memo_and_the_globals_found_are_bounded() {
        let mut p = b"\x80\x04\x8c\x05torch\x94\x8c\x06Tensor\x94".to_vec();
        p.extend_from_slice(b"X\x00\x10\x00\x00");
        p.extend(std::iter::repeat_n(b'a', 4096));
        p.extend(std::iter::repeat_n(0x94, MAX_MEMO));
        p.push(b'.');
        let err = audit(&p).unwrap_err();
        assert!(
            matches!(&err, AuditError::Invalid(m) if m.contains("memo entries")),
            "{err:?}"
        );
        let mut q = b"\x80\x04\x8c\x05torch\x94\x8c\x06Tensor\x94".to_vec();
        for _ in 0..10_000 {
            q.extend_from_slice(b"h\x00h\x01\x93");
        }
        q.push(b'.');
        assert_eq!(audit(&q).unwrap(), vec!["torch.Tensor"]);
    }

    #[test]
    fn allowed_globals_pass_and_others_are_named() {
        let ok = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
        assert_eq!(audit(ok).unwrap(), vec!["collections.OrderedDict"]);
        let evil = b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.";
        assert_eq!(
            audit(evil),
            Err(AuditError::Forbidden("posix.system".into()))
        );
        // Protocol 4: STACK_GLOBAL from two short strings, also through the memo.
        let sg = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93.";
        assert_eq!(
            audit(sg),
            Err(AuditError::Forbidden("builtins.eval".into()))
        );
        let memo = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.";
        assert_eq!(audit(memo), Err(AuditError::Forbidden("os.system".into())));
        let storage = b"ctorch.cuda\nFloatStorage\n.";
        assert!(audit(storage).is_ok());
    }

    #[test]
    fn computed_globals_truncation_and_junk_are_invalid() {
        assert!(matches!(
            audit(b"\x80\x04N)\x93."),
            Err(AuditError::Invalid(_))
        ));
        assert!(matches!(
            audit(b"\x80\x02cposix\nsys"),
            Err(AuditError::Invalid(_))
        ));
        assert!(matches!(
            audit(b"X\xff\xff\xff\x7f"),
            Err(AuditError::Invalid(_))
        ));
        assert!(matches!(audit(b"\xff"), Err(AuditError::Invalid(_))));
        assert!(matches!(audit(b"\x82\x01."), Err(AuditError::Invalid(_))));
        let long = [b"c".as_slice(), &vec![b'a'; 10_000], b"\n"].concat();
        assert!(matches!(audit(&long), Err(AuditError::Invalid(_))));
    }
}
