//! The HTTP example's price list: a second hot module, which the handler's code calls.
//!
//! The handler (`examples/handler`, hot module `handler::app`) answers
//! `GET /price?item=tea&qty=3` by calling [`prices::price_cents`] — a plain call from one hot
//! module into another crate's hot module. The server depends on both crates, so both are linked
//! into it as generation 0 and each reloads on its own:
//!
//! - edit [`prices`] (the price list below) and save: `pricing::prices` reloads, `handler::app`
//!   does not, and the handler's next requests see the new prices;
//! - edit the handler and save: `handler::app` reloads; its library carries a copy of this
//!   crate (cargo links it in), which hotmod verifies against the server's `pricing::prices` and
//!   links to it, so the reloaded handler still calls the server's current price list, never a
//!   private copy (see "Hot modules that call hot modules" in docs/reload-model.md).
//!
//! ```
//! use pricing::prices;
//!
//! assert_eq!(prices::price_cents("tea", 3), Some(750));
//! assert_eq!(prices::price_cents("scone", 1), None);
//! ```

#![warn(missing_docs)]

/// The price list.
#[hotmod::hot_module]
pub mod prices {
    /// What one of each item costs, in cents: the lines to edit to see `pricing` reload alone.
    const PRICE_LIST: &[(&str, u64)] = &[("tea", 250), ("coffee", 320), ("cake", 475)];

    /// What `quantity` of `item` cost, in cents; `None` for an item that is not on the list (or
    /// a total too large to count).
    pub fn price_cents(item: &str, quantity: u32) -> Option<u64> {
        unit_cents(item)?.checked_mul(u64::from(quantity))
    }

    /// The items on the list, in its order.
    pub fn items() -> Vec<String> {
        PRICE_LIST
            .iter()
            .map(|(item, _)| (*item).to_owned())
            .collect()
    }

    /// The price of one `item`, in cents.
    fn unit_cents(item: &str) -> Option<u64> {
        PRICE_LIST
            .iter()
            .find(|(name, _)| *name == item)
            .map(|(_, cents)| *cents)
    }
}
