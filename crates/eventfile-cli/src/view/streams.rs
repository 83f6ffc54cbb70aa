//! The streams pane: one page of streams at a time (`EventStore::streams` with a prefix and
//! an `after` name), with the names that began the earlier pages kept to go back: a store of
//! millions of streams is browsed holding one page.
//!
//! This module owns the page and the selection; it never draws.

use eventfile::{EventStore, StreamInfo};

/// Streams one page holds.
pub const PAGE: usize = 100;

#[derive(Debug, Default)]
pub struct StreamsPane {
    pub prefix: String,
    rows: Vec<StreamInfo>,
    selected: usize,
    pub top: usize,
    /// The `after` of the current page.
    after: Option<String>,
    /// The `after` of each earlier page, the nearest last.
    earlier: Vec<Option<String>>,
}

impl StreamsPane {
    pub fn new(prefix: String) -> StreamsPane {
        StreamsPane {
            prefix,
            ..StreamsPane::default()
        }
    }

    /// Reads the current page again (after a prefix change or new events), keeping the
    /// selected row where it can.
    pub fn reload(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        self.rows = store.streams(&self.prefix, self.after.as_deref(), PAGE)?;
        self.selected = self.selected.min(self.rows.len().saturating_sub(1));
        Ok(())
    }

    /// The first page of streams starting with `prefix`.
    pub fn set_prefix(&mut self, store: &dyn EventStore, prefix: String) -> eventfile::Result<()> {
        self.prefix = prefix;
        self.first(store)
    }

    pub fn first(&mut self, store: &dyn EventStore) -> eventfile::Result<()> {
        self.after = None;
        self.earlier.clear();
        self.selected = 0;
        self.top = 0;
        self.reload(store)
    }

    fn next_page(&mut self, store: &dyn EventStore) -> eventfile::Result<bool> {
        let Some(last) = self.rows.last().map(|s| s.stream.clone()) else {
            return Ok(false);
        };
        if self.rows.len() < PAGE {
            return Ok(false);
        }
        let rows = store.streams(&self.prefix, Some(&last), PAGE)?;
        if rows.is_empty() {
            return Ok(false);
        }
        self.earlier.push(self.after.replace(last));
        self.rows = rows;
        self.top = 0;
        Ok(true)
    }

    fn previous_page(&mut self, store: &dyn EventStore) -> eventfile::Result<bool> {
        let Some(after) = self.earlier.pop() else {
            return Ok(false);
        };
        self.after = after;
        self.rows = store.streams(&self.prefix, self.after.as_deref(), PAGE)?;
        self.top = self.rows.len().saturating_sub(1);
        Ok(true)
    }

    pub fn down(&mut self, store: &dyn EventStore, n: usize) -> eventfile::Result<()> {
        if self.selected + n >= self.rows.len() && self.next_page(store)? {
            self.selected = 0;
            return Ok(());
        }
        self.selected = (self.selected + n).min(self.rows.len().saturating_sub(1));
        Ok(())
    }

    pub fn up(&mut self, store: &dyn EventStore, n: usize) -> eventfile::Result<()> {
        if self.selected < n && self.selected == 0 && self.previous_page(store)? {
            self.selected = self.rows.len().saturating_sub(1);
            return Ok(());
        }
        self.selected = self.selected.saturating_sub(n);
        Ok(())
    }

    /// The last row of the page.
    pub fn end(&mut self) {
        self.selected = self.rows.len().saturating_sub(1);
    }

    /// The page's number, from 1.
    pub fn page_number(&self) -> usize {
        self.earlier.len() + 1
    }

    pub fn rows(&self) -> &[StreamInfo] {
        &self.rows
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> Option<&StreamInfo> {
        self.rows.get(self.selected)
    }

    /// Puts `rows` on the page as if read: names the store's checks refuse today (control
    /// characters) may still come from an older store or another writer.
    #[cfg(test)]
    pub fn show(&mut self, rows: Vec<StreamInfo>) {
        self.rows = rows;
        self.selected = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventfile::{ExpectedVersion, MemoryStore, NewEvent};

    #[test]
    fn pages_forward_and_back_with_a_prefix() {
        let store = MemoryStore::new();
        for i in 0..250 {
            for s in [format!("order-{i:03}"), format!("customer-{i:03}")] {
                store
                    .append(
                        &s,
                        ExpectedVersion::Any,
                        vec![NewEvent::new("T", serde_json::json!({}))],
                    )
                    .unwrap();
            }
        }
        let mut pane = StreamsPane::new(String::new());
        pane.set_prefix(&store, "order-".into()).unwrap();
        assert_eq!(pane.rows().len(), PAGE);
        pane.down(&store, PAGE).unwrap();
        assert_eq!(pane.selected().unwrap().stream, "order-100");
        assert_eq!(pane.page_number(), 2);
        pane.down(&store, PAGE).unwrap();
        pane.down(&store, PAGE).unwrap();
        pane.end();
        assert_eq!(pane.selected().unwrap().stream, "order-249");
        pane.up(&store, 1000).unwrap();
        assert_eq!(pane.selected().unwrap().stream, "order-200");
        pane.up(&store, 1).unwrap();
        assert_eq!(pane.selected().unwrap().stream, "order-199");
        pane.first(&store).unwrap();
        assert_eq!(pane.selected().unwrap().stream, "order-000");
    }
}
