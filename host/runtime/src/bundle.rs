//! [`Bundle`]: one version of a plugin as a unit, its wasm module and its content tables, with one
//! digest over both.
//!
//! A bundle is what is stored, uploaded, rolled out and rolled back; its [`Bundle::digest`]
//! identifies the version everywhere (the registry, the action log, the admin API). On disk, during
//! development, a bundle is the folder layout `PLUGINS_DIR/NAME.wasm` + `PLUGINS_DIR/NAME/*.toml`
//! ([`Bundle::from_dir`]); on the wire and in the database it is the canonical encoding of
//! [`Bundle::encode`], described byte by byte in `sdk/ABI.md` ("Plugin bundles") so other tools can
//! write one.

use std::collections::BTreeMap;
use std::path::Path;

use cauldron_sdk::Doc;

use crate::PluginError;
use crate::module::sha256_hex;

/// The first bytes of every encoded bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"CLDRNBDL";
/// The encoding version [`Bundle::encode`] writes and [`Bundle::decode`] reads.
pub const BUNDLE_FORMAT: u8 = 1;
/// The largest encoded bundle accepted (module and tables together).
pub const MAX_BUNDLE_BYTES: usize = 32 << 20;
/// The most content tables a bundle may carry.
pub const MAX_TABLES: usize = 256;
/// The longest table name, in bytes.
pub const MAX_TABLE_NAME: usize = 128;
/// The media type of an encoded bundle (the admin API's upload body).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.cauldron.bundle";

/// A plugin version: its wasm module and its content tables as the TOML text of their files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    /// The module (binary wasm, or the text format, which the runtime also reads).
    pub wasm: Vec<u8>,
    /// Content tables by table name (the file stem: `realms` for `NAME/realms.toml`), each the file's
    /// text exactly as written.
    pub content: BTreeMap<String, String>,
}

impl Bundle {
    /// Read `dir/NAME.wasm` and every `dir/NAME/*.toml` (a missing folder means no tables). Only the
    /// files are read; their TOML is checked when the bundle is loaded.
    pub fn from_dir(dir: &Path, name: &str) -> Result<Self, PluginError> {
        let wasm_path = dir.join(format!("{name}.wasm"));
        let wasm = std::fs::read(&wasm_path)
            .map_err(|e| PluginError::Compile(format!("reading {}: {e}", wasm_path.display())))?;
        let content = read_table_texts(&dir.join(name))?;
        let bundle = Self { wasm, content };
        bundle.check()?;
        Ok(bundle)
    }

    /// `wasm` with the content tables of `content_dir/*.toml` (none when the folder is missing): an
    /// uploaded module bundled with the tables a host has on disk.
    pub fn with_content_dir(wasm: Vec<u8>, content_dir: &Path) -> Result<Self, PluginError> {
        let bundle = Self {
            wasm,
            content: read_table_texts(content_dir)?,
        };
        bundle.check()?;
        Ok(bundle)
    }

    /// Write the bundle out in the folder layout: `dir/NAME.wasm` and `dir/NAME/TABLE.toml` (the
    /// folder `dir/NAME` is replaced).
    pub fn write_dir(&self, dir: &Path, name: &str) -> std::io::Result<()> {
        self.check()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{name}.wasm")), &self.wasm)?;
        let tables = dir.join(name);
        if tables.exists() {
            std::fs::remove_dir_all(&tables)?;
        }
        std::fs::create_dir_all(&tables)?;
        for (table, text) in &self.content {
            std::fs::write(tables.join(format!("{table}.toml")), text)?;
        }
        Ok(())
    }

    /// The canonical encoding (all integers little-endian):
    ///
    /// ```text
    /// magic   8 bytes  "CLDRNBDL"
    /// format  u8       1
    /// wasm    u32 length, then the module's bytes
    /// tables  u32 count, then per table in ascending byte order of its name:
    ///         u16 name length, the name (UTF-8), u32 text length, the text (UTF-8)
    /// ```
    ///
    /// Nothing follows the last table. The same bundle always encodes to the same bytes.
    pub fn encode(&self) -> Vec<u8> {
        let size = 8
            + 1
            + 4
            + self.wasm.len()
            + 4
            + self
                .content
                .iter()
                .map(|(k, v)| 2 + k.len() + 4 + v.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(BUNDLE_MAGIC);
        out.push(BUNDLE_FORMAT);
        put_u32(&mut out, self.wasm.len());
        out.extend_from_slice(&self.wasm);
        put_u32(&mut out, self.content.len());
        for (name, text) in &self.content {
            let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            put_u32(&mut out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    /// Read an encoded bundle. Refuses, with a message saying where, anything that is not exactly
    /// one canonical encoding: another magic or format, lengths past the end, a bundle over
    /// [`MAX_BUNDLE_BYTES`], more than [`MAX_TABLES`] tables, a bad or repeated table name, tables
    /// out of order, text that is not UTF-8, or bytes after the last table.
    pub fn decode(bytes: &[u8]) -> Result<Self, PluginError> {
        let bad = |msg: String| PluginError::BadContent(format!("not a plugin bundle: {msg}"));
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(bad(format!(
                "{} bytes is over the {MAX_BUNDLE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let mut r = Reader { bytes, at: 0 };
        if r.take(BUNDLE_MAGIC.len()).map_err(&bad)? != BUNDLE_MAGIC {
            return Err(bad("it does not start with `CLDRNBDL`".into()));
        }
        let format = r.take(1).map_err(&bad)?[0];
        if format != BUNDLE_FORMAT {
            return Err(bad(format!(
                "format {format} is not the supported {BUNDLE_FORMAT}"
            )));
        }
        let wasm_len = r.u32().map_err(&bad)?;
        let wasm = r.take(wasm_len).map_err(&bad)?.to_vec();
        let count = r.u32().map_err(&bad)?;
        if count > MAX_TABLES {
            return Err(bad(format!("{count} tables is over the limit of {MAX_TABLES}")));
        }
        let mut content = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let name_len = r.u16().map_err(&bad)?;
            let name = std::str::from_utf8(r.take(name_len).map_err(&bad)?)
                .map_err(|_| bad("a table name is not UTF-8".into()))?
                .to_owned();
            check_table_name(&name).map_err(&bad)?;
            if last.as_ref().is_some_and(|l| *l >= name) {
                return Err(bad(format!(
                    "table `{name}` is out of order or repeated (names ascend)"
                )));
            }
            let text_len = r.u32().map_err(&bad)?;
            let text = std::str::from_utf8(r.take(text_len).map_err(&bad)?)
                .map_err(|_| bad(format!("table `{name}` is not UTF-8")))?
                .to_owned();
            last = Some(name.clone());
            content.insert(name, text);
        }
        if r.at != bytes.len() {
            return Err(bad(format!("{} bytes follow the last table", bytes.len() - r.at)));
        }
        Ok(Self { wasm, content })
    }

    /// Hex sha256 of [`Bundle::encode`]: the version's identity.
    pub fn digest(&self) -> String {
        sha256_hex(&self.encode())
    }

    /// Hex sha256 of the module alone.
    pub fn wasm_sha256(&self) -> String {
        sha256_hex(&self.wasm)
    }

    /// The content tables parsed from their TOML, as a load hands them to the plugin. A table that
    /// does not parse is an error naming it.
    pub fn tables(&self) -> Result<BTreeMap<String, Doc>, PluginError> {
        self.content
            .iter()
            .map(|(name, text)| Ok((name.clone(), parse_table(name, text)?)))
            .collect()
    }

    /// Whether the names and sizes keep the limits [`Bundle::decode`] checks.
    fn check(&self) -> Result<(), PluginError> {
        if self.content.len() > MAX_TABLES {
            return Err(PluginError::BadContent(format!(
                "{} content tables is over the limit of {MAX_TABLES}",
                self.content.len()
            )));
        }
        for name in self.content.keys() {
            check_table_name(name).map_err(PluginError::BadContent)?;
        }
        let size = self.wasm.len()
            + self
                .content
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>();
        if size + 17 > MAX_BUNDLE_BYTES {
            return Err(PluginError::BadContent(format!(
                "the bundle is over the {MAX_BUNDLE_BYTES}-byte limit"
            )));
        }
        Ok(())
    }
}

/// Parse one table's TOML text into the document a plugin reads.
pub(crate) fn parse_table(name: &str, text: &str) -> Result<Doc, PluginError> {
    let value: toml::Value =
        toml::from_str(text).map_err(|e| PluginError::BadContent(format!("{name}.toml: {e}")))?;
    Doc::encode(&value).map_err(|e| PluginError::BadContent(format!("{name}.toml: {e}")))
}

/// A table name: 1 to [`MAX_TABLE_NAME`] bytes, no path separators or NUL, not starting with a dot.
fn check_table_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "table name `{}` must be 1 to {MAX_TABLE_NAME} bytes without `/`, `\\` or NUL, not starting with `.`",
            name.escape_debug()
        ))
    }
}

/// The text of every `*.toml` in `dir`, by file stem. A missing folder means no tables.
pub(crate) fn read_table_texts(dir: &Path) -> Result<BTreeMap<String, String>, PluginError> {
    let mut tables = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tables),
        Err(e) => return Err(PluginError::BadContent(format!("{}: {e}", dir.display()))),
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| PluginError::BadContent(format!("{}: {e}", path.display())))?;
        tables.insert(stem.to_owned(), text);
    }
    Ok(tables)
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    // Every length fits: the sizes are checked against MAX_BUNDLE_BYTES before a bundle is used.
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// Reads a byte slice front to back, never past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("{n} bytes announced at offset {}, past the end", self.at))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn u16(&mut self) -> Result<usize, String> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle {
        Bundle {
            wasm: b"\0asm\x01\0\0\0".to_vec(),
            content: BTreeMap::from([
                ("realms".to_owned(), "[a]\nx = 1\n".to_owned()),
                ("luck".to_owned(), "roll = 2\n".to_owned()),
            ]),
        }
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let b = sample();
        let bytes = b.encode();
        assert_eq!(Bundle::decode(&bytes).expect("decodes"), b);
        assert_eq!(b.encode(), bytes, "the same bundle encodes the same");
        assert_eq!(&bytes[..8], BUNDLE_MAGIC);
        assert_eq!(b.digest().len(), 64);
        // Tables come in name order: `luck` before `realms`.
        let luck = bytes.windows(4).position(|w| w == b"luck").expect("luck");
        let realms = bytes.windows(6).position(|w| w == b"realms").expect("realms");
        assert!(luck < realms);
    }

    #[test]
    fn content_changes_the_digest_and_the_module_digest_stays() {
        let a = sample();
        let mut b = sample();
        b.content.insert("luck".into(), "roll = 3\n".into());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.wasm_sha256(), b.wasm_sha256());
    }

    #[test]
    fn garbage_is_refused_cleanly() {
        let good = sample().encode();
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            b"CLDRNBD".to_vec(),
            b"not a bundle at all".to_vec(),
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0]].concat(),
        ];
        let mut other_format = good.clone();
        other_format[8] = 2;
        cases.push(other_format);
        // A module length far past the end.
        let mut long = good.clone();
        long[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(long);
        // Tables out of order: swap the names by hand.
        let swapped = {
            let mut enc = Vec::new();
            enc.extend_from_slice(BUNDLE_MAGIC);
            enc.push(1);
            enc.extend_from_slice(&0u32.to_le_bytes());
            enc.extend_from_slice(&2u32.to_le_bytes());
            for name in ["b", "a"] {
                enc.extend_from_slice(&1u16.to_le_bytes());
                enc.extend_from_slice(name.as_bytes());
                enc.extend_from_slice(&0u32.to_le_bytes());
            }
            enc
        };
        cases.push(swapped);
        // A name with a path in it.
        let mut pathy = Bundle::default();
        pathy.content.insert("../x".into(), String::new());
        cases.push(pathy.encode());
        for case in cases {
            let err = Bundle::decode(&case).expect_err("refused");
            assert!(err.to_string().contains("not a plugin bundle"), "{err}");
        }
        let huge = vec![0u8; MAX_BUNDLE_BYTES + 1];
        assert!(Bundle::decode(&huge).is_err());
    }

    #[test]
    fn tables_parse_or_name_the_bad_one() {
        assert_eq!(sample().tables().expect("parses").len(), 2);
        let mut bad = sample();
        bad.content.insert("broken".into(), "x = = 1".into());
        let err = bad.tables().expect_err("bad TOML");
        assert!(err.to_string().contains("broken.toml"), "{err}");
    }
}
