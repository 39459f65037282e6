//! The call-order contract shared by every format: records grouped by category in the header's
//! order, then events. Checked in one place so every format fails the same way on a caller bug
//! instead of silently producing a misfiled CSV or a JSON document out of order.

use crate::ExportError;

/// Where the writer is in the stream.
#[derive(Debug)]
pub(crate) struct Order {
    categories: Vec<String>,
    /// Index of the category whose records are being written; `categories.len()` once events
    /// started (or before the first record: `None`).
    current: Option<usize>,
    events_started: bool,
}

/// What a record did to the position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Advance {
    /// Categories that are now complete (earlier ones skipped included), in order.
    pub closed: std::ops::Range<usize>,
    /// Index of the record's category when it differs from the previous record's.
    pub opened: Option<usize>,
}

impl Order {
    /// Checks the header's categories are distinct.
    pub(crate) fn new<'a>(
        categories: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ExportError> {
        let mut names: Vec<String> = Vec::new();
        for name in categories {
            if names.iter().any(|n| n == name) {
                return Err(ExportError::DuplicateCategory(name.to_owned()));
            }
            names.push(name.to_owned());
        }
        Ok(Self {
            categories: names,
            current: None,
            events_started: false,
        })
    }

    /// Number of categories in the header.
    pub(crate) fn len(&self) -> usize {
        self.categories.len()
    }

    /// Accepts a record of `category`.
    pub(crate) fn record(&mut self, category: &str) -> Result<Advance, ExportError> {
        if self.events_started {
            return Err(ExportError::RecordAfterEvents);
        }
        let start = self.current.unwrap_or(0);
        if self.current.is_some() && self.categories[start] == category {
            return Ok(Advance {
                closed: start..start,
                opened: None,
            });
        }
        match self.categories[start..].iter().position(|c| c == category) {
            Some(offset) => {
                let index = start + offset;
                let closed_from = self.current.unwrap_or(0);
                self.current = Some(index);
                Ok(Advance {
                    closed: closed_from..index,
                    opened: Some(index),
                })
            }
            None if self.categories[..start].iter().any(|c| c == category) => {
                Err(ExportError::CategoryOutOfOrder(category.to_owned()))
            }
            None => Err(ExportError::UnknownCategory(category.to_owned())),
        }
    }

    /// Accepts an event (or the end); returns the categories that are complete now.
    pub(crate) fn events(&mut self) -> std::ops::Range<usize> {
        if self.events_started {
            return self.len()..self.len();
        }
        self.events_started = true;
        self.current.unwrap_or(0)..self.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order::new(["a", "b", "c"]).unwrap()
    }

    #[test]
    fn grouped_records_open_each_category_once() {
        let mut o = order();
        assert_eq!(
            o.record("a").unwrap(),
            Advance {
                closed: 0..0,
                opened: Some(0)
            }
        );
        assert_eq!(
            o.record("a").unwrap(),
            Advance {
                closed: 0..0,
                opened: None
            }
        );
        assert_eq!(
            o.record("c").unwrap(),
            Advance {
                closed: 0..2,
                opened: Some(2)
            }
        );
        assert_eq!(o.events(), 2..3);
        assert_eq!(o.events(), 3..3);
    }

    #[test]
    fn skipping_the_first_categories_closes_them() {
        let mut o = order();
        assert_eq!(
            o.record("b").unwrap(),
            Advance {
                closed: 0..1,
                opened: Some(1)
            }
        );
    }

    #[test]
    fn no_records_closes_everything_at_events() {
        assert_eq!(order().events(), 0..3);
    }

    #[test]
    fn going_back_is_refused() {
        let mut o = order();
        o.record("b").unwrap();
        assert!(matches!(o.record("a"), Err(ExportError::CategoryOutOfOrder(c)) if c == "a"));
        assert!(matches!(
            o.record("zz"),
            Err(ExportError::UnknownCategory(_))
        ));
    }

    #[test]
    fn records_after_events_are_refused() {
        let mut o = order();
        o.events();
        assert!(matches!(o.record("a"), Err(ExportError::RecordAfterEvents)));
    }

    #[test]
    fn duplicate_categories_are_refused() {
        assert!(matches!(
            Order::new(["a", "a"]),
            Err(ExportError::DuplicateCategory(_))
        ));
    }
}
