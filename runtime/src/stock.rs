//! A worker thread's stock of spares: what [`crate::lease`] and [`crate::records`] keep per
//! worker so that shared counts and memory move between cores in batches.

use std::cell::{Cell, RefCell, RefMut};

/// Something a stock holds, and how it goes back where it came from.
pub(crate) trait GiveBack {
    fn give_back(self);
}

/// A thread's spares, kept only while the thread is a running worker (`on`); whatever is left
/// when the thread ends goes back.
pub(crate) struct Stock<S: GiveBack> {
    on: Cell<bool>,
    spares: RefCell<Vec<S>>,
}

impl<S: GiveBack> Stock<S> {
    pub(crate) const fn new() -> Stock<S> {
        Stock { on: Cell::new(false), spares: RefCell::new(Vec::new()) }
    }

    /// The spares, if this thread keeps any.
    pub(crate) fn spares(&self) -> Option<RefMut<'_, Vec<S>>> {
        self.on.get().then(|| self.spares.borrow_mut())
    }

    /// Whether this thread keeps spares from now on.
    pub(crate) fn keep(&self, on: bool) {
        self.on.set(on);
    }

    /// How many spares there are, kept or not.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.spares.borrow().len()
    }

    /// Every spare, taken out of the stock.
    pub(crate) fn take_all(&self) -> Vec<S> {
        self.spares.take()
    }
}

impl<S: GiveBack> Drop for Stock<S> {
    fn drop(&mut self) {
        for s in self.spares.take() {
            s.give_back();
        }
    }
}
