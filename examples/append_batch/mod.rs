//! What the append-measuring examples share: the events they append.

use eventfile::NewEvent;
use serde_json::json;

/// `n` events of the shape `benches/append.rs` appends: an order's line item, about 80 bytes of
/// JSON data.
pub fn order_items(n: u64) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                "ItemAdded",
                json!({"order": i, "sku": "SKU-000123", "qty": 2, "price_cents": 1250}),
            )
        })
        .collect()
}
