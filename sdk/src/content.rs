//! A plugin's content tables (`content/*.toml`), decoded once and shared by every call.
//!
//! The host hands a plugin its tables once, at load time, through `cauldron_init`; the glue keeps
//! them in a [`Content`], the plugin's [`crate::Plugin::prepare`] decodes and checks the ones it
//! uses, and the host snapshots the instance right after (ABI.md, "Pre-initialisation"). Every call
//! then starts from that snapshot with its tables already decoded, so a call carries and decodes
//! only the player's state.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::abi::fault_codes;
use crate::doc::Doc;
use crate::plugin::Error;

/// A content table with a fixed file name and its own checks.
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// struct Fortunes { lines: Vec<String> }
///
/// impl cauldron_sdk::Table for Fortunes {
///     const NAME: &'static str = "fortunes"; // content/fortunes.toml
///     fn check(&self) -> Result<(), Error> {
///         if self.lines.is_empty() { return Err(Error::fault("bad_content", "no lines")); }
///         Ok(())
///     }
/// }
///
/// let fortunes = ctx.table::<Fortunes>()?; // Rc<Fortunes>, decoded and checked once
/// ```
pub trait Table: DeserializeOwned + 'static {
    /// The table's name: the file stem of `content/NAME.toml`.
    const NAME: &'static str;

    /// Checks beyond what decoding enforces (thresholds ascending, odds summing to one, ...). Runs
    /// once when the table is first decoded; an error there refuses the plugin at load time when
    /// [`crate::Plugin::prepare`] asks for the table.
    fn check(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// The raw tables and the ones decoded so far.
#[derive(Default)]
pub struct Content {
    raw: BTreeMap<String, Doc>,
    /// Decoded tables by type. A failed decode is not kept: it is reported on every use.
    decoded: RefCell<BTreeMap<TypeId, Rc<dyn Any>>>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("tables", &self.raw.keys().collect::<Vec<_>>())
            .field("decoded", &self.decoded.borrow().len())
            .finish()
    }
}

impl Content {
    /// Tables by name, none decoded yet.
    pub fn new(raw: BTreeMap<String, Doc>) -> Self {
        Self {
            raw,
            decoded: RefCell::default(),
        }
    }

    /// Whether there are no tables at all.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The names of the tables.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.raw.keys().map(String::as_str)
    }

    /// A table as it arrived (MessagePack).
    pub fn raw(&self, name: &str) -> Option<&Doc> {
        self.raw.get(name)
    }

    /// Table `T`, decoded and checked on first use and shared after. A missing, malformed or
    /// failing table is a `bad_content` fault.
    pub fn table<T: Table>(&self) -> Result<Rc<T>, Error> {
        if let Some(any) = self.decoded.borrow().get(&TypeId::of::<T>()) {
            return Ok(known_type::<T>(Rc::clone(any)));
        }
        let table: T = self.decode(T::NAME)?;
        table.check()?;
        let table = Rc::new(table);
        let shared: Rc<dyn Any> = table.clone();
        self.decoded.borrow_mut().insert(TypeId::of::<T>(), shared);
        Ok(table)
    }

    /// Decode table `name` into any type, afresh on every use (see [`Content::table`] for the
    /// decoded-once form).
    pub fn decode<T: DeserializeOwned>(&self, name: &str) -> Result<T, Error> {
        let doc = self.raw.get(name).ok_or_else(|| {
            Error::fault(
                fault_codes::BAD_CONTENT,
                format!("content table `{name}` was not provided"),
            )
        })?;
        doc.decode()
            .map_err(|e| Error::fault(fault_codes::BAD_CONTENT, format!("content table `{name}`: {e}")))
    }
}

/// The `Rc<T>` behind an entry of `Content::decoded`, which is keyed by `TypeId::of::<T>()`.
///
/// `Rc::downcast` would check the type again through `Any::type_id`, a virtual call. In wasm a
/// virtual call is an indirect call through the function table, which the host fills lazily in
/// every fresh instance: the first call of each target costs a call out to the host (three per
/// cultivation action; docs/benchmarks.md has the figures). The map's key already proves the type.
#[allow(
    unsafe_code,
    reason = "a cast the map's key proves; see the SAFETY note and the debug assertion"
)]
fn known_type<T: Table>(any: Rc<dyn Any>) -> Rc<T> {
    debug_assert!(
        any.is::<T>(),
        "Content::decoded holds an Rc<T> under TypeId::of::<T>()"
    );
    // SAFETY: `Content::table` inserts under `TypeId::of::<T>()` only an `Rc<T>` (unsized to
    // `Rc<dyn Any>`), and nothing else writes the map; so this pointer is the `Rc<T>`'s own, with
    // its allocation, layout and reference count.
    unsafe { Rc::from_raw(Rc::into_raw(any).cast::<T>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Odds {
        weights: Vec<u32>,
    }

    impl Table for Odds {
        const NAME: &'static str = "odds";
        fn check(&self) -> Result<(), Error> {
            if self.weights.iter().sum::<u32>() == 0 {
                return Err(Error::fault(
                    fault_codes::BAD_CONTENT,
                    "odds: weights sum to zero",
                ));
            }
            Ok(())
        }
    }

    #[derive(serde::Serialize)]
    struct RawOdds {
        weights: Vec<u32>,
    }

    fn content(weights: Vec<u32>) -> Content {
        let mut raw = BTreeMap::new();
        raw.insert(
            "odds".to_owned(),
            Doc::encode(&RawOdds { weights }).expect("encodes"),
        );
        Content::new(raw)
    }

    #[test]
    fn a_table_is_decoded_once_and_shared() {
        let c = content(vec![1, 2, 3]);
        let a = c.table::<Odds>().expect("decodes");
        let b = c.table::<Odds>().expect("decodes");
        assert!(Rc::ptr_eq(&a, &b), "the second use must reuse the first decode");
        assert_eq!(a.weights, [1, 2, 3]);
    }

    /// The same raw table read as another type.
    #[derive(Debug, Deserialize)]
    struct Wide {
        weights: Vec<u64>,
    }

    impl Table for Wide {
        const NAME: &'static str = "odds";
    }

    #[test]
    fn tables_of_different_types_stay_apart_and_reuse_counts_references() {
        let c = content(vec![4, 5]);
        let odds = c.table::<Odds>().expect("decodes");
        let wide = c.table::<Wide>().expect("decodes");
        for _ in 0..3 {
            let (o, w) = (c.table::<Odds>().expect("odds"), c.table::<Wide>().expect("wide"));
            assert!(Rc::ptr_eq(&o, &odds) && Rc::ptr_eq(&w, &wide));
            assert_eq!(
                (o.weights.as_slice(), w.weights.as_slice()),
                (&[4u32, 5][..], &[4u64, 5][..])
            );
        }
        // Each handed-out `Rc` was counted and released: the map's reference and ours remain.
        assert_eq!((Rc::strong_count(&odds), Rc::strong_count(&wide)), (2, 2));
        drop(c);
        assert_eq!((Rc::strong_count(&odds), Rc::strong_count(&wide)), (1, 1));
    }

    #[test]
    fn a_failing_check_is_a_bad_content_fault_every_time() {
        let c = content(vec![0, 0]);
        for _ in 0..2 {
            let err = c.table::<Odds>().expect_err("zero weights fail the check");
            assert_eq!(err.code(), fault_codes::BAD_CONTENT);
        }
    }

    #[test]
    fn a_missing_table_names_itself() {
        let c = Content::default();
        let err = c.table::<Odds>().expect_err("no tables");
        assert!(err.to_string().contains("`odds` was not provided"), "{err}");
    }
}
