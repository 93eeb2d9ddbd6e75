//! The event generator's pure logic: which products change, and how.

use chrono::{DateTime, Utc};
pub use fastrand::Rng;

use crate::change::PRODUCT_CHANGED;
use crate::{version::next_version, ProductChanged, StockAndPrice};

/// Prices stay within these bounds (cents) whatever the random walk does.
pub const MIN_PRICE_CENTS: i64 = 99;
pub const MAX_PRICE_CENTS: i64 = 999_999;
/// Stock never goes negative nor above this.
pub const MAX_STOCK: i64 = 10_000;

/// What the generator needs to know about a product to change it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductState {
    pub product_id: String,
    pub values: StockAndPrice,
    pub applied_version: u64,
    pub published_version: u64,
}

/// Up to `count` distinct products, chosen uniformly at random.
pub fn pick_random<T: Clone>(rng: &mut Rng, items: &[T], count: usize) -> Vec<T> {
    let mut indices: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut indices);
    indices
        .into_iter()
        .take(count)
        .map(|i| items[i].clone())
        .collect()
}

/// New price and/or stock for a product: price moves by up to ±10 %, stock by a
/// sale of up to 5 units or a delivery of up to 20. At least one field changes.
pub fn new_values(rng: &mut Rng, old: StockAndPrice) -> StockAndPrice {
    loop {
        let (change_price, change_stock) = match rng.u8(0..3) {
            0 => (true, false),
            1 => (false, true),
            _ => (true, true),
        };
        let mut next = old;
        if change_price {
            let percent = rng.i64(-10..=10);
            // At least a cent in the chosen direction, so small prices still move.
            let delta = (old.price_cents * percent.abs() / 100).max(1) * percent.signum();
            next.price_cents = (old.price_cents + delta).clamp(MIN_PRICE_CENTS, MAX_PRICE_CENTS);
        }
        if change_stock {
            let delta = if rng.bool() {
                -rng.i64(1..=5)
            } else {
                rng.i64(1..=20)
            };
            next.stock = (old.stock + delta).clamp(0, MAX_STOCK);
        }
        if next != old {
            return next;
        }
    }
}

/// The change event for one product.
pub fn plan_change(
    rng: &mut Rng,
    product: &ProductState,
    change_id: String,
    now: DateTime<Utc>,
) -> ProductChanged {
    ProductChanged {
        event_type: PRODUCT_CHANGED.to_owned(),
        change_id,
        product_id: product.product_id.clone(),
        version: next_version(product.applied_version, product.published_version),
        previous: product.values,
        current: new_values(rng, product.values),
        changed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(price: i64, stock: i64) -> ProductState {
        ProductState {
            product_id: "p-001".into(),
            values: StockAndPrice {
                price_cents: price,
                stock,
            },
            applied_version: 3,
            published_version: 4,
        }
    }

    #[test]
    fn picks_distinct_products_and_never_more_than_exist() {
        let mut rng = Rng::with_seed(7);
        let items: Vec<u32> = (0..50).collect();
        let picked = pick_random(&mut rng, &items, 10);
        let distinct: std::collections::BTreeSet<_> = picked.iter().collect();
        assert_eq!((picked.len(), distinct.len()), (10, 10));
        assert_eq!(pick_random(&mut rng, &items[..3], 10).len(), 3);
    }

    #[test]
    fn picks_are_spread_over_the_catalogue() {
        let mut rng = Rng::with_seed(1);
        let items: Vec<u32> = (0..50).collect();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(pick_random(&mut rng, &items, 3));
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn values_always_change_and_stay_in_bounds() {
        let mut rng = Rng::with_seed(42);
        for (price, stock) in [
            (MIN_PRICE_CENTS, 0),
            (MAX_PRICE_CENTS, MAX_STOCK),
            (1999, 3),
            (100, 1),
        ] {
            for _ in 0..2000 {
                let old = StockAndPrice {
                    price_cents: price,
                    stock,
                };
                let new = new_values(&mut rng, old);
                assert_ne!(new, old);
                assert!(
                    (MIN_PRICE_CENTS..=MAX_PRICE_CENTS).contains(&new.price_cents),
                    "{new:?}"
                );
                assert!((0..=MAX_STOCK).contains(&new.stock), "{new:?}");
                assert!((new.price_cents - old.price_cents).abs() <= old.price_cents / 10 + 1);
            }
        }
    }

    #[test]
    fn prices_move_both_ways_by_real_amounts() {
        let mut rng = Rng::with_seed(5);
        let old = StockAndPrice {
            price_cents: 10_000,
            stock: 50,
        };
        let deltas: Vec<i64> = (0..2000)
            .map(|_| new_values(&mut rng, old).price_cents - old.price_cents)
            .collect();
        assert!(
            deltas.iter().any(|d| *d <= -500),
            "some drops of 5 % or more"
        );
        assert!(
            deltas.iter().any(|d| *d >= 500),
            "some rises of 5 % or more"
        );
    }

    #[test]
    fn planned_change_is_valid_and_versioned_past_in_flight_changes() {
        let mut rng = Rng::with_seed(3);
        let now = Utc::now();
        let change = plan_change(&mut rng, &state(1999, 10), "c-1".into(), now);
        assert_eq!(change.version, 5);
        assert_eq!(
            change.previous,
            StockAndPrice {
                price_cents: 1999,
                stock: 10
            }
        );
        assert_eq!(change.changed_at, now);
        change.validate().unwrap();
        let parsed = ProductChanged::from_message_body(&change.to_json()).unwrap();
        assert_eq!(parsed, change);
    }
}
