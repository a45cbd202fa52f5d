//! Effective stats: base stats plus every plugin's `modifiers` and every active buff.

use std::collections::BTreeMap;

use cauldron_sdk::wire::Modifier;

/// `effective = (base + Σ add) × (1 + Σ mul)` for every stat that has a base value or a modifier.
pub fn compose(base: &BTreeMap<String, f64>, modifiers: &[Modifier]) -> BTreeMap<String, f64> {
    let mut add: BTreeMap<&str, f64> = BTreeMap::new();
    let mut mul: BTreeMap<&str, f64> = BTreeMap::new();
    for m in modifiers {
        if m.add.is_finite() {
            *add.entry(&m.stat).or_default() += m.add;
        }
        if m.mul.is_finite() {
            *mul.entry(&m.stat).or_default() += m.mul;
        }
    }
    let names = base
        .keys()
        .map(String::as_str)
        .chain(add.keys().copied())
        .chain(mul.keys().copied());
    names
        .map(|name| {
            let b = base.get(name).copied().unwrap_or(0.0);
            let v =
                (b + add.get(name).copied().unwrap_or(0.0)) * (1.0 + mul.get(name).copied().unwrap_or(0.0));
            (name.to_owned(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(stat: &str, add: f64, mul: f64) -> Modifier {
        Modifier {
            stat: stat.into(),
            add,
            mul,
            source: String::new(),
        }
    }

    #[test]
    fn adds_then_multiplies_and_keeps_untouched_stats() {
        let base = BTreeMap::from([("attack".to_owned(), 10.0), ("speed".to_owned(), 5.0)]);
        let eff = compose(
            &base,
            &[
                m("attack", 20.0, 0.0),
                m("attack", 0.0, 0.1),
                m("attack", 0.0, 0.1),
                m("crit_rate", 0.05, 0.0),
            ],
        );
        assert!((eff["attack"] - 36.0).abs() < 1e-9);
        assert_eq!(eff["speed"], 5.0);
        assert!((eff["crit_rate"] - 0.05).abs() < 1e-12);
        let nan = compose(&base, &[m("attack", f64::NAN, f64::INFINITY)]);
        assert_eq!(nan["attack"], 10.0);
    }
}
